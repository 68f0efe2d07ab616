cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 1.0.0
s:name: stage-in
s:description: EOEPCA stage-in. STAC items (an Item URL, a STAC API search URL or a catalog) into a local self-contained STAC catalog with their assets.
s:dateCreated: "2026-12-04"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:softwareHelp:
  - class: s:CreativeWork
    s:name: stage-in manual
    s:url: https://github.com/eopack/eopack/tree/main/docs/staging.md
s:keywords: [STAC, stage-in, EOEPCA, eoap-cwlwrap]
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
    id: stage-in
    label: Stage in STAC items
    doc: |
      The Directory stage-in of the EOEPCA staging contract (eoap-cwlwrap, component-contracts):
      one URI input, one Directory output. The URI names a STAC Item, a STAC API search
      (…/search?collections=…&bbox=…&datetime=…, every page is followed) or a static catalog, so
      one input can stage the many items a median over many dates needs. The output folder holds a
      self-contained catalog.json whose items are its direct children, each in <item id>/ with its
      assets downloaded beside it.
    requirements:
      SchemaDefRequirement:
        types:
          - $import: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml
    inputs:
      reference:
        label: STAC reference
        doc: URL of a STAC Item, of a STAC API search (GET), or of a catalog.
        type: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml#URI
    outputs:
      staged:
        label: Staged catalog
        doc: Folder with catalog.json, the items as its direct children and their assets.
        type: Directory
        outputSource: stage_in_step/staged
    steps:
      stage_in_step:
        label: Stage in
        doc: Runs the stage-in tool.
        run: "#stage-in-tool"
        in:
          reference: reference
        out: [staged]

  - class: CommandLineTool
    id: stage-in-tool
    label: stage-in tool
    doc: Reads the STAC reference, downloads every asset and writes the self-contained catalog into its working directory.
    baseCommand: stage-in
    requirements:
      DockerRequirement:
        dockerPull: eopack/stage-in:1.0.0
      ResourceRequirement:
        coresMin: 1
        coresMax: 1
        ramMin: 512
        ramMax: 1024
      NetworkAccess:
        networkAccess: true
      SchemaDefRequirement:
        types:
          - $import: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml
    inputs:
      reference:
        type: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml#URI
        inputBinding:
          position: 1
          valueFrom: $(self.value)
    outputs:
      staged:
        label: Staged catalog
        doc: The tool's working directory with catalog.json.
        type: Directory
        outputBinding:
          glob: .

  - class: CommandLineTool
    id: stage-in-file
    label: stage-in tool for File inputs
    doc: |
      The File stage-in of the same contract (one URI input, one File output): downloads the one
      file the URI names, e.g. the process graph of openeo-graph. Select it as stage-in.cwl#stage-in-file.
    baseCommand: stage-in
    arguments:
      # One file instead of a STAC catalog: the File form of the contract.
      - --as-file
    requirements:
      DockerRequirement:
        dockerPull: eopack/stage-in:1.0.0
      ResourceRequirement:
        coresMin: 1
        coresMax: 1
        ramMin: 256
        ramMax: 512
      NetworkAccess:
        networkAccess: true
      SchemaDefRequirement:
        types:
          - $import: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml
    inputs:
      reference:
        label: File URL
        doc: URL of the file to download.
        type: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml#URI
        inputBinding:
          position: 1
          valueFrom: $(self.value)
      file_format:
        label: File format
        doc: IANA media type IRI recorded as the staged file's format (CWL checks it against the
          consuming input's format); the default suits openEO process graphs.
        type: string
        default: https://www.iana.org/assignments/media-types/application/json
    outputs:
      staged:
        label: Staged file
        doc: The downloaded file, under the last segment of its URL.
        type: File
        format: $(inputs.file_format)
        outputBinding:
          # The working directory holds only the downloaded file.
          glob: "*"
