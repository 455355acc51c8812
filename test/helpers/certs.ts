// Throwaway PKI for TLS tests, made with the openssl CLI in a temporary
// directory: a CA, server certificates (RSA or ECDSA, with the SANs asked
// for) and client certificates for mTLS. Nothing is committed; each test
// file makes its own.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Issued {
  cert: string;
  key: string;
  /** PEM text of the certificate and key. */
  certPem: string;
  keyPem: string;
}

export interface Ca extends Issued {
  name: string;
}

export class Pki {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-pki-'));
  private serial = 1;

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  private newKey(file: string, type: 'rsa' | 'ec'): void {
    if (type === 'rsa') this.openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file]);
    else this.openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
  }

  ca(name: string, type: 'rsa' | 'ec' = 'ec'): Ca {
    const key = path.join(this.dir, `${name}.key`);
    const cert = path.join(this.dir, `${name}.pem`);
    this.newKey(key, type);
    this.openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return { name, cert, key, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
  }

  /** A leaf signed by `ca`; `sans` like ["DNS:a.test", "URI:spiffe://x"]. */
  issue(ca: Ca, file: string, opts: { subject: string; sans?: string[]; type?: 'rsa' | 'ec'; usage?: 'server' | 'client'; days?: number }): Issued {
    const key = path.join(this.dir, `${file}.key`);
    const csr = path.join(this.dir, `${file}.csr`);
    const cert = path.join(this.dir, `${file}.pem`);
    const ext = path.join(this.dir, `${file}.ext`);
    this.newKey(key, opts.type ?? 'ec');
    this.openssl(['req', '-new', '-key', key, '-out', csr, '-subj', opts.subject]);
    const lines = ['basicConstraints=CA:FALSE', `extendedKeyUsage=${opts.usage === 'client' ? 'clientAuth' : 'serverAuth'}`];
    if (opts.sans && opts.sans.length > 0) lines.push(`subjectAltName=${opts.sans.join(',')}`);
    writeFileSync(ext, lines.join('\n') + '\n');
    this.openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(this.serial++), '-out', cert, '-days', String(opts.days ?? 2), '-extfile', ext]);
    return { cert, key, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
