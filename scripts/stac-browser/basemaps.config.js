// eopack's STAC Browser build: no basemap. The upstream default fetches OpenStreetMap tiles from
// tile.openstreetmap.org at page load; the local stack must work offline (scripts/stac-browser.sh).
// Footprints and assets still show; the map says "no basemap".
export default function configureBasemap() {
  return [];
}
