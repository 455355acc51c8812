// Keeps a CertificateStore in step with certificate and key files on disk.
// The files are polled (stat every reload_interval) rather than watched:
// tools replace certificates by renaming a new file over the old one, which
// an inotify watch on the old file never reports, and a stat of two files
// every few seconds costs nothing. A pair whose cert or key changed is read
// again and handed to the store; when the new pair is unusable (garbage, a
// key that does not match, a half-written file) the error is logged and the
// old certificate keeps serving. The next change is tried again, so writing
// the key a moment after the certificate is fine.
import { readFileSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Logger } from '../log.js';
import type { CertificateFiles } from '../config/types.js';
import type { CertificateStore } from './certificate-store.js';

interface Watched {
  id: string;
  files: CertificateFiles;
  /** mtime, size and inode of both files when last read. */
  signature: string;
}

export class CertificateFileWatcher {
  private readonly watched: Watched[];
  private readonly timer: NodeJS.Timeout;
  private checking = false;

  /** Loads every pair now (throws on a bad one: the config check passed, so that is a real error) and polls from then on. */
  constructor(
    private readonly store: CertificateStore,
    certificates: readonly CertificateFiles[],
    intervalMs: number,
    private readonly log: Logger,
  ) {
    this.watched = certificates.map((files, i) => {
      const signature = signatureSync(files);
      store.set(`file:${i}`, { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') });
      return { id: `file:${i}`, files, signature };
    });
    this.timer = setInterval(() => {
      if (this.checking) return;
      this.checking = true;
      this.check()
        .catch((err: unknown) => this.log.error({ err }, 'certificate check failed'))
        .finally(() => (this.checking = false));
    }, intervalMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    for (const w of this.watched) {
      let signature: string;
      try {
        signature = await signatureOf(w.files);
      } catch (err) {
        // A file briefly missing mid-replacement: keep serving, look again next time.
        this.log.warn({ cert: w.files.cert, key: w.files.key, err: (err as Error).message }, 'certificate file unreadable: keeping the loaded certificate');
        continue;
      }
      if (signature === w.signature) continue;
      w.signature = signature;
      try {
        const info = this.store.set(w.id, { cert: readFileSync(w.files.cert, 'utf8'), key: readFileSync(w.files.key, 'utf8') });
        this.log.info({ cert: w.files.cert, names: info.names, notAfter: info.notAfter }, 'certificate reloaded');
      } catch (err) {
        this.log.error({ cert: w.files.cert, key: w.files.key, reason: (err as Error).message }, 'certificate reload failed: keeping the previous certificate');
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

const describe = (s: { mtimeMs: number; size: number; ino: number }): string => `${s.mtimeMs}:${s.size}:${s.ino}`;

function signatureSync(files: CertificateFiles): string {
  return `${describe(statSync(files.cert))}|${describe(statSync(files.key))}`;
}

async function signatureOf(files: CertificateFiles): Promise<string> {
  const [cert, key] = await Promise.all([stat(files.cert), stat(files.key)]);
  return `${describe(cert)}|${describe(key)}`;
}
