import { loadManifest, type Manifest } from "../manifest.js";

/** A sealed set whose manifest checked out: what restores and drills read from. */
export type LoadedSet = { id: string; dir: string; manifest: Manifest; manifestSha256: string };

export async function loadSet(id: string, dir: string): Promise<LoadedSet> {
  const { manifest, sha256 } = await loadManifest(dir);
  return { id, dir, manifest, manifestSha256: sha256 };
}
