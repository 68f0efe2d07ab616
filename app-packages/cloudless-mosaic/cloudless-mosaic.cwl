cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  calrissian: https://calrissian-cwl.github.io/schema#
$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 1.0.0
s:name: cloudless-mosaic
s:description: Monthly cloud-free median mosaics of Sentinel-2 L2A, masked per pixel, as COGs with STAC.
s:dateCreated: "2026-11-25"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:softwareHelp:
  - class: s:CreativeWork
    s:name: cloudless-mosaic manual
    s:url: https://github.com/eopack/eopack/tree/main/app-packages/cloudless-mosaic
s:keywords: [Sentinel-2, mosaic, cloud-free, median, Dask]
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
    id: cloudless-mosaic
    label: Cloudless monthly mosaics
    doc: |
      For each calendar month in the date range, a per-pixel median of the Sentinel-2 L2A bands
      over every clear observation: pixels whose scene classification (SCL) is no data, defective,
      cloud shadow, cloud or cirrus are left out, whatever the scene's eo:cloud_cover. One folder
      per month (monthly-mosaic-YYYY-MM) with a COG per band, the count of clear observations, a
      true-colour quicklook and a STAC item; a STAC collection ties the months together. The COGs
      store the exact median as uint16 (nodata 0): reflectance = value * 0.00005 - 0.1, recorded in
      the files and in raster:bands. Inputs follow the eoap cloudless-mosaic package.
    requirements:
      NetworkAccess:
        networkAccess: true
    inputs:
      start_date:
        label: Start date
        doc: First day, YYYY-MM-DD (UTC).
        type: string
      end_date:
        label: End date
        doc: Last day, YYYY-MM-DD (UTC, inclusive).
        type: string
      aoi:
        label: Area of interest
        doc: west,south,east,north in degrees (EPSG:4326).
        type: string
      bands:
        label: Bands
        doc: Common names (red, green, blue, nir, ...) or Sentinel-2 band ids (B04, ...).
        type: string[]
        default: [red, green, blue, nir]
      collection:
        label: Collection
        doc: Id of the Sentinel-2 L2A collection.
        type: string
        default: sentinel-2-l2a
      max_cloud_cover:
        label: Maximum scene cloud cover
        doc: Skip scenes whose eo:cloud_cover is above this percentage (clouds are masked per pixel anyway).
        type: float?
      max_items:
        label: Maximum items
        doc: Read at most this many items.
        type: int?
      resolution:
        label: Resolution
        doc: Output pixel size in metres.
        type: float
        default: 20
      stac_api:
        label: STAC API
        doc: URL of a STAC API to search; give this or input_catalog.
        type: string?
      input_catalog:
        label: Staged catalog
        doc: A folder holding a STAC catalog (catalog.json or collection.json); give this or stac_api.
        type: Directory?
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
      mosaics:
        label: Monthly mosaics
        doc: Folder with catalog.json, collection.json and one monthly-mosaic-YYYY-MM folder per month.
        type: Directory
        outputSource: mosaic/results
    steps:
      mosaic:
        label: Compute the monthly mosaics
        doc: Runs the cloudless-mosaic tool.
        run: "#cloudless-mosaic-tool"
        in:
          start_date: start_date
          end_date: end_date
          aoi: aoi
          bands: bands
          collection: collection
          max_cloud_cover: max_cloud_cover
          max_items: max_items
          resolution: resolution
          stac_api: stac_api
          input_catalog: input_catalog
          epsg: epsg
          masked_classes: masked_classes
          dask_report: dask_report
        out: [results]

  - class: CommandLineTool
    id: cloudless-mosaic-tool
    label: cloudless-mosaic tool
    doc: Searches, masks per pixel, takes monthly medians and writes COGs, quicklooks and STAC into its working directory.
    baseCommand: cloudless-mosaic
    requirements:
      DockerRequirement:
        dockerPull: eopack/cloudless-mosaic:1.0.0
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
      start_date:
        type: string
        inputBinding: {prefix: --start-date}
      end_date:
        type: string
        inputBinding: {prefix: --end-date}
      aoi:
        type: string
        inputBinding: {prefix: --aoi}
      bands:
        type: string[]
        inputBinding: {prefix: --bands, itemSeparator: ","}
      collection:
        type: string
        inputBinding: {prefix: --collection}
      max_cloud_cover:
        type: float?
        inputBinding: {prefix: --max-cloud-cover}
      max_items:
        type: int?
        inputBinding: {prefix: --max-items}
      resolution:
        type: float
        inputBinding: {prefix: --resolution}
      stac_api:
        type: string?
        inputBinding: {prefix: --stac-api}
      input_catalog:
        type: Directory?
        inputBinding: {prefix: --input-catalog}
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
