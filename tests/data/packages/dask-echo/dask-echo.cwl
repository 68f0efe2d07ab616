cwlVersion: v1.2
# A test package: its tool writes the DASK_GATEWAY_* variables it receives into a STAC-free
# folder, so tests can see exactly what a runner lowered. Not an app package (no container).
$namespaces:
  s: https://schema.org/
  calrissian: https://calrissian-cwl.github.io/schema#
s:softwareVersion: 0.1.0
s:author: [{class: s:Person, s:name: eopack tests}]
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
$graph:
  - class: Workflow
    id: dask-echo
    label: Dask echo
    doc: Records the Dask environment its tool receives.
    requirements:
      InlineJavascriptRequirement: {}
    inputs:
      workers:
        label: Workers
        doc: Drives the requirement's expressions.
        type: int
        default: 3
      memory:
        label: Worker memory
        doc: Drives workerMemory.
        type: string
        default: 3G
    outputs:
      result:
        label: Result
        doc: The folder with env.txt.
        type: Directory
        outputSource: echo/out
    steps:
      echo:
        label: Echo
        doc: Writes the environment.
        run: "#echo"
        in:
          workers: workers
          memory: memory
        out: [out]
  - class: CommandLineTool
    id: echo
    label: echo tool
    doc: Writes DASK_GATEWAY_* to env.txt.
    requirements:
      InlineJavascriptRequirement: {}
      DockerRequirement:
        dockerPull: eopack/does-not-exist:0.1.0
      ResourceRequirement: {coresMin: 1, ramMin: 64}
      ShellCommandRequirement: {}
    hints:
      calrissian:DaskGatewayRequirement:
        workerCores: $(inputs.workers)
        workerCoresLimit: 1
        clusterMaxCores: $(inputs.workers * 2)
        workerMemory: $(inputs.memory)
        clusterMaxMemory: "12G"
    inputs:
      workers: {type: int, label: Workers, doc: unused by the command}
      memory: {type: string, label: Memory, doc: unused by the command}
    arguments:
      # The shell is needed for the pipe into env.txt.
      - {valueFrom: "env | grep ^DASK_GATEWAY_ | sort > env.txt", shellQuote: false}
    outputs:
      out:
        label: Folder
        doc: The working directory.
        type: Directory
        outputBinding: {glob: .}
