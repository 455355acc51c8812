// Where ACME keys and certificates live on disk: the account key per CA
// directory, and per certificate its private key and chain. Directories are
// 0700 and files 0600 (private keys), each written to a temporary file and
// renamed into place, so a crash mid-write never leaves half a key beside a
// whole certificate; the key is renamed before the certificate, and a pair
// that does not match is not loaded.
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createHash, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { join } from 'node:path';

/** A certificate chain (leaf first) with its private key, both PEM. */
export interface CertificatePair {
  cert: string;
  key: string;
}

/** What the renewal schedule needs to know of a certificate. */
export interface CertificateFacts {
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names of its subjectAltName, lower-case. */
  names: string[];
}

export function certificateFacts(certPem: string): CertificateFacts {
  const leaf = new X509Certificate(certPem);
  const names = (leaf.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('DNS:'))
    .map((n) => n.slice(4).toLowerCase());
  return { serial: leaf.serialNumber, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), names };
}

export class AcmeStorage {
  constructor(private readonly root: string) {}

  /** The account key for `directory`, made (and kept) once per CA. */
  accountKey(directory: string, make: () => Promise<Buffer>): Promise<Buffer> {
    const dir = this.privateDir('accounts');
    const file = join(dir, createHash('sha256').update(directory).digest('hex').slice(0, 16) + '.key');
    try {
      return Promise.resolve(readFileSync(file));
    } catch {
      return make().then((key) => {
        writePrivate(file, key);
        return key;
      });
    }
  }

  /** The stored pair for `name`, if both files exist, parse and belong together; undefined otherwise. */
  load(name: string): CertificatePair | undefined {
    const dir = join(this.root, 'certificates', name);
    let pair: CertificatePair;
    try {
      pair = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    } catch {
      return undefined;
    }
    try {
      return new X509Certificate(pair.cert).checkPrivateKey(createPrivateKey(pair.key)) ? pair : undefined;
    } catch {
      return undefined;
    }
  }

  save(name: string, pair: CertificatePair): void {
    const dir = this.privateDir('certificates', name);
    writePrivate(join(dir, 'key.pem'), pair.key);
    writePrivate(join(dir, 'cert.pem'), pair.cert);
  }

  /** `root/...parts`, created if missing, and 0700 from here down whatever it was before (it holds private keys). */
  private privateDir(...parts: string[]): string {
    let dir = this.root;
    for (const part of ['', ...parts]) {
      dir = part === '' ? dir : join(dir, part);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    }
    return dir;
  }
}

function writePrivate(file: string, data: string | Buffer): void {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, file);
}
