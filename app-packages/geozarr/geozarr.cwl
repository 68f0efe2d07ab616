cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  calrissian: https://calrissian-cwl.github.io/schema#
$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 1.0.0
s:name: geozarr
s:description: Convert an EOPF (STAC) Zarr product to GeoZarr with eopf-geozarr, verified, with a STAC item.
s:dateCreated: "2026-11-25"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:softwareHelp:
  - class: s:CreativeWork
    s:name: geozarr manual
    s:url: https://github.com/eopack/eopack/tree/main/app-packages/geozarr
s:keywords: [GeoZarr, Zarr, EOPF, Sentinel-2, multiscales]
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
    id: geozarr
    label: EOPF Zarr to GeoZarr
    doc: |
      Converts an EOPF Zarr product (a URL, a STAC item whose asset is the store, or a staged
      store) to GeoZarr with eopf-geozarr: native-CRS groups with multiscale overviews (2x2 mean).
      Before converting it checks the URL, that every requested group exists (suggesting close
      names) and that a CRS is declared; afterwards it verifies that every group has multiscales,
      that level 0 equals the input bit for bit and that every level is georeferenced at pixel
      centres. Outputs the store, a STAC item, and optionally a Dask report and a tarball.
    requirements:
      NetworkAccess:
        networkAccess: true
    inputs:
      zarr_url:
        label: Zarr URL
        doc: http(s):// or s3:// URL of the EOPF Zarr store; give this, stac_item or input_zarr.
        type: string?
      stac_item:
        label: STAC item
        doc: URL of a STAC item whose asset is the Zarr store; give this, zarr_url or input_zarr.
        type: string?
      input_zarr:
        label: Staged Zarr store
        doc: A folder holding the EOPF Zarr store; give this, zarr_url or stac_item.
        type: Directory?
      groups:
        label: Groups
        doc: Space- or comma-separated groups to convert; the leading / is optional.
        type: string
        default: /measurements/reflectance/r10m /measurements/reflectance/r20m /measurements/reflectance/r60m
      layout:
        label: Layout
        doc: generic (per-group multiscales, honours groups) or s2-optimized (eopf-geozarr's Sentinel-2 layout).
        type:
          type: enum
          symbols: [generic, s2-optimized]
        default: generic
      spatial_chunk:
        label: Spatial chunk
        doc: Chunk width and height of the output arrays, in pixels.
        type: int
        default: 4096
      min_dimension:
        label: Minimum overview size
        doc: No overview level smaller than this many pixels on its shorter side.
        type: int
        default: 256
      dask_report:
        label: Dask performance report
        doc: Also write dask-report.html (distributed.performance_report).
        type: boolean
        default: false
      tarball:
        label: Tarball
        doc: Also write geozarr.tar.gz holding the store, beside it in the item folder.
        type: boolean
        default: false
    outputs:
      geozarr_results:
        label: GeoZarr results
        doc: Folder with catalog.json, the item folder holding the GeoZarr store, and the optional report and tarball.
        type: Directory
        outputSource: geozarr_step/results
    steps:
      geozarr_step:
        label: Convert to GeoZarr
        doc: Runs the geozarr tool.
        run: "#geozarr-tool"
        in:
          zarr_url: zarr_url
          stac_item: stac_item
          input_zarr: input_zarr
          groups: groups
          layout: layout
          spatial_chunk: spatial_chunk
          min_dimension: min_dimension
          dask_report: dask_report
          tarball: tarball
        out: [results]

  - class: CommandLineTool
    id: geozarr-tool
    label: geozarr tool
    doc: Preflights, validates, converts with eopf-geozarr, verifies and writes the store and a STAC catalog into its working directory.
    baseCommand: geozarr
    requirements:
      DockerRequirement:
        dockerPull: eopack/geozarr:1.0.0
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
      zarr_url:
        type: string?
        inputBinding: {prefix: --zarr-url}
      stac_item:
        type: string?
        inputBinding: {prefix: --stac-item}
      input_zarr:
        type: Directory?
        inputBinding: {prefix: --input-zarr}
      groups:
        type: string
        inputBinding: {prefix: --groups}
      layout:
        type:
          type: enum
          symbols: [generic, s2-optimized]
        inputBinding: {prefix: --layout}
      spatial_chunk:
        type: int
        inputBinding: {prefix: --spatial-chunk}
      min_dimension:
        type: int
        inputBinding: {prefix: --min-dimension}
      dask_report:
        type: boolean
        inputBinding: {prefix: --dask-report}
      tarball:
        type: boolean
        inputBinding: {prefix: --tarball}
    outputs:
      results:
        label: Results folder
        doc: The tool's working directory with catalog.json.
        type: Directory
        outputBinding:
          glob: .
