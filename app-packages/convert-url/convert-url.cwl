cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  calrissian: https://calrissian-cwl.github.io/schema#
$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 1.0.0
s:name: convert-url
s:description: Fetch an image by URL, transform it, and publish the result with a STAC catalog.
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:author:
  - class: s:Organization
    s:name: eopack developers

$graph:
  - class: Workflow
    id: convert-url
    label: Convert an image from a URL
    doc: |
      Downloads one image over http(s), applies a function (resize) and writes the result with a
      STAC catalog, item and asset. GeoTIFFs keep their georeferencing. Compatible with the
      inputs of EOEPCA's convert-url example (fn, url, size).
    requirements:
      NetworkAccess:
        networkAccess: true
    inputs:
      fn:
        label: Function
        doc: The operation to perform; supported values are 'resize'.
        type: string
      url:
        label: Image URL
        doc: http or https URL of the image to convert (private addresses are refused unless
          EOPACK_ALLOW_PRIVATE_URLS=1 is set).
        type: string
      size:
        label: Target size
        doc: A percentage such as '50%' or an exact WIDTHxHEIGHT such as '640x480'.
        type: string
      max_bytes:
        label: Download limit
        doc: Refuse downloads larger than this many bytes.
        type: int?
      timeout:
        label: Network timeout
        doc: Seconds to wait when connecting and between received bytes.
        type: float?
      dask_report:
        label: Dask performance report
        doc: Also write dask-report.html (distributed.performance_report).
        type: boolean
        default: false
    outputs:
      converted_image:
        label: Converted image with STAC
        doc: Folder holding catalog.json, one item and the converted image as its 'data' asset.
        type: Directory
        outputSource: convert/results
    steps:
      convert:
        label: Download and convert
        doc: Runs the convert-url tool on one URL.
        run: "#convert"
        in:
          fn: fn
          url: url
          size: size
          max_bytes: max_bytes
          timeout: timeout
          dask_report: dask_report
        out: [results]

  - class: CommandLineTool
    id: convert
    label: convert-url tool
    doc: Downloads, checks and converts one image and writes a STAC catalog into its working directory.
    baseCommand: convert-url
    requirements:
      DockerRequirement:
        dockerPull: eopack/convert-url:1.0.0
      ResourceRequirement:
        coresMin: 1
        coresMax: 2
        ramMin: 512
        ramMax: 2048
      NetworkAccess:
        networkAccess: true
      EnvVarRequirement:
        envDef:
          # Dask's scratch space must be in the job's own temporary folder, not a shared /tmp.
          DASK_TEMPORARY_DIRECTORY: $(runtime.tmpdir)
    hints:
      calrissian:DaskGatewayRequirement:
        workerCores: 1
        workerCoresLimit: 1
        clusterMaxCores: 2
        workerMemory: "1G"
        clusterMaxMemory: "2G"
    inputs:
      fn:
        label: Function
        doc: The operation to perform.
        type: string
        inputBinding:
          prefix: --fn
      url:
        label: Image URL
        doc: http or https URL of the image.
        type: string
        inputBinding:
          prefix: --url
      size:
        label: Target size
        doc: A percentage such as 50% or WIDTHxHEIGHT.
        type: string
        inputBinding:
          prefix: --size
      max_bytes:
        label: Download limit
        doc: Maximum download size in bytes.
        type: int?
        inputBinding:
          prefix: --max-bytes
      timeout:
        label: Network timeout
        doc: Connect/read timeout in seconds.
        type: float?
        inputBinding:
          prefix: --timeout
      dask_report:
        label: Dask performance report
        doc: Write dask-report.html.
        type: boolean
        inputBinding:
          prefix: --dask-report
    outputs:
      results:
        label: Results folder
        doc: The tool's working directory, holding catalog.json and the item folder.
        type: Directory
        outputBinding:
          glob: .
