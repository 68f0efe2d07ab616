cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  iana: https://www.iana.org/assignments/media-types/
  calrissian: https://calrissian-cwl.github.io/schema#
$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 1.0.0
s:name: openeo-graph
s:description: Runs an openEO process graph (JSON) on Sentinel-2 L2A data found via STAC; results as COGs and STAC.
s:dateCreated: "2026-11-25"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:softwareHelp:
  - class: s:CreativeWork
    s:name: openeo-graph manual
    s:url: https://github.com/eopack/eopack/tree/main/app-packages/openeo-graph
s:keywords: [openEO, process graph, Sentinel-2, Dask, STAC]
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
    id: openeo-graph
    label: openEO process graph
    doc: |
      Executes an openEO process graph, the JSON an openEO client writes ({"process_graph": {...}} or
      the bare flat graph), without an openEO backend: openeo-pg-parser-networkx parses it and
      openeo-processes-dask runs the processes on Dask. load_collection searches a STAC API or a
      staged STAC catalog (openEO collection ids are mapped to STAC collections by collection_map) and
      yields float32 reflectance with dimensions t, bands, y, x (SCL available as a band);
      save_result writes one COG per time step and band (GTiff) or a netCDF file, and a STAC catalog.
      Unsupported processes, malformed graphs and unknown collections are refused before any data
      is read, with one line that names the process, the JSON path or the available collections.
    requirements:
      NetworkAccess:
        networkAccess: true
    inputs:
      process_graph:
        label: Process graph
        doc: |
          openEO process graph JSON: {"process_graph": {...}} as openEO clients write it, or the bare flat graph.
        type: File
        format: iana:application/json
      stac_api:
        label: STAC API
        doc: URL of a STAC API that load_collection searches; give this or input_catalog.
        type: string?
      input_catalog:
        label: Staged catalog
        doc: A folder holding a STAC catalog (catalog.json or collection.json) that load_collection searches; give this or stac_api.
        type: Directory?
      collection_map:
        label: Collection map
        doc: |
          openEO collection id -> STAC collection id, as comma-separated OPENEO_ID=stac-id pairs
          (e.g. SENTINEL2_L2A=sentinel-2-l2a). SENTINEL2_L2A=sentinel-2-l2a is built in; ids that are
          STAC collection ids of the source are used as they are.
        type: string?
      dask_report:
        label: Dask performance report
        doc: Also write dask-report.html (distributed.performance_report).
        type: boolean
        default: false
    outputs:
      openeo_results:
        label: openEO results
        doc: Folder with catalog.json and one STAC item per saved time step (COG per band) or netCDF file.
        type: Directory
        outputSource: openeo_graph_step/results
    steps:
      openeo_graph_step:
        label: Run the process graph
        doc: Runs the openeo-graph tool.
        run: "#openeo-graph-tool"
        in:
          process_graph: process_graph
          stac_api: stac_api
          input_catalog: input_catalog
          collection_map: collection_map
          dask_report: dask_report
        out: [results]

  - class: CommandLineTool
    id: openeo-graph-tool
    label: openeo-graph tool
    doc: Parses and checks the process graph, runs it on Dask and writes COGs and a STAC catalog into its working directory.
    baseCommand: openeo-graph
    requirements:
      DockerRequirement:
        dockerPull: eopack/openeo-graph:1.0.0
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
      process_graph:
        type: File
        format: iana:application/json
        inputBinding: {prefix: --process-graph}
      stac_api:
        type: string?
        inputBinding: {prefix: --stac-api}
      input_catalog:
        type: Directory?
        inputBinding: {prefix: --input-catalog}
      collection_map:
        type: string?
        inputBinding: {prefix: --collection-map}
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
