cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  calrissian: https://calrissian-cwl.github.io/schema#
$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 1.0.0
s:name: convert-url
s:description: Fetch an image by URL, transform it, and publish the result with a STAC catalog.
s:dateCreated: "2026-11-25"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:softwareHelp:
  - class: s:CreativeWork
    s:name: convert-url manual
    s:url: https://github.com/eopack/eopack/tree/main/app-packages/convert-url
# Project-wide values (author, publisher, license) have one source: the root pyproject.toml
# ([project] authors and license); `eopack validate` checks these equal (check metadata_project).
s:author:
  - class: s:Person
    s:givenName: eopack
    s:familyName: maintainers
    s:email: eopack@users.noreply.github.com
    s:affiliation: &eopack
      class: s:Organization
      s:name: eopack developers
      s:url: https://github.com/eopack
s:publisher: *eopack

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
        doc: The operation to perform on the image (resize scales it to the target size).
        type:
          type: enum
          symbols: [resize]
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
        type:
          type: enum
          symbols: [resize]
        inputBinding:
          prefix: --fn
      url:
        type: string
        inputBinding:
          prefix: --url
      size:
        type: string
        inputBinding:
          prefix: --size
      max_bytes:
        type: int?
        inputBinding:
          prefix: --max-bytes
      timeout:
        type: float?
        inputBinding:
          prefix: --timeout
      dask_report:
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
