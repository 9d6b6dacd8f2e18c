/**
 * backup-drill: provable backups for a PostgreSQL + Redis + MinIO stack.
 *
 * The Dagger module runs the same Steps as the host runner (`npx backup-drill`)
 * in hermetic containers.
 */
import { func, object } from "@dagger.io/dagger";
import { TOOL_VERSION } from "../pipeline/version.js";

@object()
export class BackupDrill {
  /**
   * The backup-drill version this module was built from.
   *
   * Example: dagger call version
   */
  @func()
  version(): string {
    return TOOL_VERSION;
  }
}
