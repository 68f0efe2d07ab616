cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  iana: https://www.iana.org/assignments/media-types/
$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 1.0.0
s:name: stage-out
s:description: EOEPCA stage-out. A result folder's STAC catalog and assets into an S3 bucket, hrefs rewritten to the bucket; returns the catalog URL.
s:dateCreated: "2026-12-04"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:softwareHelp:
  - class: s:CreativeWork
    s:name: stage-out manual
    s:url: https://github.com/eopack/eopack/tree/main/docs/staging.md
s:keywords: [STAC, stage-out, S3, EOEPCA, eoap-cwlwrap]
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
    id: stage-out
    label: Stage out a STAC catalog to S3
    doc: |
      The Directory stage-out of the EOEPCA staging contract (eoap-cwlwrap, component-contracts):
      one Directory input, one URI output, and extra inputs for the bucket. Does what the
      ZOO-Project default stage-out does: the root catalog's direct items go into a Collection named
      after the run folder (<process_name>-<6 random chars>), assets are uploaded under
      s3://<bucket>/<folder>/<collection>/<item id>/, hrefs are rewritten to the bucket and the
      catalog URL s3://<bucket>/<folder>/catalog.json is the output. Credentials come from the
      s3_credentials file (mode 600), never from a job value.
    requirements:
      SchemaDefRequirement:
        types:
          - $import: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml
    inputs:
      stac_catalog:
        label: Results folder
        doc: The folder holding the STAC catalog to stage out (catalog.json at its root).
        type: Directory
      s3_bucket:
        label: Bucket
        doc: Name of the S3 bucket to upload to (it must exist).
        type: string
      process_name:
        label: Process name
        doc: Prefix of the run folder in the bucket; a random suffix is added, as the platform does.
        type: string
        default: eopack
      s3_endpoint:
        label: S3 endpoint
        doc: URL of the S3 endpoint; empty means AWS (or STAGEOUT_AWS_SERVICEURL in the environment).
        type: string?
      s3_region:
        label: S3 region
        doc: Region of the bucket (default us-east-1, or STAGEOUT_AWS_REGION).
        type: string?
      s3_credentials:
        label: S3 credentials file
        doc: An AWS shared-credentials file with a [default] access key (mode 600); `eopack s3 up` writes one.
        type: File?
        # An AWS shared-credentials file is INI text.
        format: iana:text/plain
    outputs:
      stac_catalog_uri:
        label: Catalog URL
        doc: s3://<bucket>/<folder>/catalog.json, the staged-out catalog.
        type: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml#URI
        outputSource: stage_out_step/stac_catalog_uri
    steps:
      stage_out_step:
        label: Stage out
        doc: Runs the stage-out tool.
        run: "#stage-out-tool"
        in:
          stac_catalog: stac_catalog
          s3_bucket: s3_bucket
          process_name: process_name
          s3_endpoint: s3_endpoint
          s3_region: s3_region
          s3_credentials: s3_credentials
        out: [stac_catalog_uri]

  - class: CommandLineTool
    id: stage-out-tool
    label: stage-out tool
    doc: Uploads the catalog's direct items and their assets, then writes the catalog URL as its output (cwl.output.json).
    baseCommand: stage-out
    requirements:
      DockerRequirement:
        dockerPull: eopack/stage-out:1.0.0
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
      stac_catalog:
        type: Directory
        inputBinding: {position: 1}
      s3_bucket:
        type: string
        inputBinding: {prefix: --s3-bucket}
      process_name:
        type: string
        inputBinding: {prefix: --process-name}
      s3_endpoint:
        type: string?
        inputBinding: {prefix: --s3-endpoint}
      s3_region:
        type: string?
        inputBinding: {prefix: --s3-region}
      s3_credentials:
        type: File?
        # An AWS shared-credentials file is INI text.
        format: iana:text/plain
        inputBinding: {prefix: --s3-credentials}
    outputs:
      stac_catalog_uri:
        label: Catalog URL
        doc: Read from cwl.output.json, which the tool writes.
        type: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml#URI
