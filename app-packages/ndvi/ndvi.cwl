cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  calrissian: https://calrissian-cwl.github.io/schema#
$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 1.0.0
s:name: ndvi
s:description: Cloud-masked Sentinel-2 L2A NDVI over an area and time range, as COGs, quicklooks and STAC.
s:dateCreated: "2026-11-25"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:softwareHelp:
  - class: s:CreativeWork
    s:name: ndvi manual
    s:url: https://github.com/eopack/eopack/tree/main/app-packages/ndvi
s:keywords: [NDVI, Sentinel-2, vegetation, openEO]
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
    id: ndvi
    label: Sentinel-2 NDVI
    doc: |
      Searches Sentinel-2 L2A scenes (a STAC API, or a staged STAC catalog), masks clouds, cloud
      shadows, cirrus and no data per pixel with the scene classification (SCL), and computes
      NDVI = (B08 - B04) / (B08 + B04) in float32, one layer per date or a median composite.
      Outputs float32 COGs (NaN = no clear view), PNG quicklooks with a legend and a STAC catalog.
    requirements:
      NetworkAccess:
        networkAccess: true
    inputs:
      stac_api:
        label: STAC API
        doc: URL of a STAC API to search; give this or input_catalog.
        type: string?
      input_catalog:
        label: Staged catalog
        doc: A folder holding a STAC catalog (catalog.json or collection.json); give this or stac_api.
        type: Directory?
      collection:
        label: Collection
        doc: Id of the Sentinel-2 L2A collection.
        type: string
        default: sentinel-2-l2a
      aoi:
        label: Area of interest
        doc: west,south,east,north in degrees (EPSG:4326).
        type: string
      start_date:
        label: Start date
        doc: First day, YYYY-MM-DD (UTC).
        type: string
      end_date:
        label: End date
        doc: Last day, YYYY-MM-DD (UTC, inclusive).
        type: string
      max_cloud_cover:
        label: Maximum scene cloud cover
        doc: Skip scenes whose eo:cloud_cover is above this percentage (clouds are masked per pixel anyway).
        type: float?
      aggregation:
        label: Aggregation
        doc: none = one NDVI per date; median = one median composite over the range.
        type:
          type: enum
          symbols: [none, median]
        default: none
      resolution:
        label: Resolution
        doc: Output pixel size in metres.
        type: float
        default: 20
      epsg:
        label: Output CRS
        doc: EPSG code of the output grid; default is the items' dominant UTM zone.
        type: int?
      masked_classes:
        label: Masked SCL classes
        doc: Comma-separated SCL classes treated as no clear view (default 0,1,3,8,9,10); an empty string runs without the cloud mask.
        type: string?
      dask_report:
        label: Dask performance report
        doc: Also write dask-report.html (distributed.performance_report).
        type: boolean
        default: false
    outputs:
      ndvi_results:
        label: NDVI results
        doc: Folder with catalog.json and one item per NDVI layer (COG + quicklook).
        type: Directory
        outputSource: ndvi_step/results
    steps:
      ndvi_step:
        label: Compute NDVI
        doc: Runs the ndvi tool.
        run: "#ndvi-tool"
        in:
          stac_api: stac_api
          input_catalog: input_catalog
          collection: collection
          aoi: aoi
          start_date: start_date
          end_date: end_date
          max_cloud_cover: max_cloud_cover
          aggregation: aggregation
          resolution: resolution
          epsg: epsg
          masked_classes: masked_classes
          dask_report: dask_report
        out: [results]

  - class: CommandLineTool
    id: ndvi-tool
    label: ndvi tool
    doc: Searches, masks, computes NDVI and writes COGs, quicklooks and a STAC catalog into its working directory.
    baseCommand: ndvi
    requirements:
      DockerRequirement:
        dockerPull: eopack/ndvi:1.0.0
      ResourceRequirement:
        coresMin: 1
        coresMax: 4
        ramMin: 2048
        ramMax: 8192
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
        clusterMaxCores: 4
        workerMemory: "2G"
        clusterMaxMemory: "8G"
    inputs:
      stac_api:
        type: string?
        inputBinding: {prefix: --stac-api}
      input_catalog:
        type: Directory?
        inputBinding: {prefix: --input-catalog}
      collection:
        type: string
        inputBinding: {prefix: --collection}
      aoi:
        type: string
        inputBinding: {prefix: --aoi}
      start_date:
        type: string
        inputBinding: {prefix: --start-date}
      end_date:
        type: string
        inputBinding: {prefix: --end-date}
      max_cloud_cover:
        type: float?
        inputBinding: {prefix: --max-cloud-cover}
      aggregation:
        type:
          type: enum
          symbols: [none, median]
        inputBinding: {prefix: --aggregation}
      resolution:
        type: float
        inputBinding: {prefix: --resolution}
      epsg:
        type: int?
        inputBinding: {prefix: --epsg}
      masked_classes:
        type: string?
        inputBinding: {prefix: --masked-classes}
      dask_report:
        type: boolean
        inputBinding: {prefix: --dask-report}
    outputs:
      results:
        label: Results folder
        doc: The tool's working directory with catalog.json.
        type: Directory
        outputBinding:
          glob: .
