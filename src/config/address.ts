// Host, host:port and CIDR syntax as the config accepts them. Pure functions;
// nothing here resolves names.

import { isIP, isIPv4, isIPv6 } from 'node:net';

// RFC 1123 labels: letters, digits and inner hyphens, 1..63 each, 253 in all.
const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function isHostname(host: string): boolean {
  if (host.length > 253) return false;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return name.split('.').every((label) => LABEL.test(label)) && !/^[0-9.]+$/.test(name);
}

/** An IPv4/IPv6 address or a host name (no brackets, no port). */
export function isValidHost(host: string): boolean {
  return isIP(host) !== 0 || isHostname(host);
}

export interface HostPort {
  /** Without brackets: "::1", ready for net.connect. */
  host: string;
  port: number;
}

/**
 * Splits "host:port" or "[v6]:port". Returns a string saying what is wrong
 * instead of throwing, so callers can turn it into a config issue.
 */
export function parseHostPort(text: string): HostPort | string {
  const m = /^\[([^\]]+)\]:([^:]*)$/.exec(text) ?? /^([^:[\]]+):([^:]*)$/.exec(text);
  if (!m) return isIPv6(text) ? 'expected [IPv6]:port with the address in brackets' : 'expected host:port';
  const host = m[1]!;
  const portText = m[2]!;
  if (text.startsWith('[') ? !isIPv6(host) : !(isIPv4(host) || isHostname(host))) {
    return 'expected host:port with a valid IPv4 address, [IPv6] address or host name';
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) return 'expected host:port with a port 1..65535';
  return { host, port };
}

/** "10.0.0.0/8", "fd00::/8" or a plain address. */
export function isValidCidr(text: string): boolean {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return false;
  if (slash < 0) return true;
  const bits = text.slice(slash + 1);
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/**
 * Whether two listening hosts could collide on one port: the same address, or
 * either a wildcard (conservative: "::" is dual-stack by default in Node).
 */
export function hostsOverlap(a: string, b: string): boolean {
  const x = canonicalHost(a);
  const y = canonicalHost(b);
  return x === y || WILDCARDS.has(x) || WILDCARDS.has(y);
}

function canonicalHost(host: string): string {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost') return '127.0.0.1';
  // "0:0::1" and "::1" are one address: let the URL parser compress IPv6.
  return isIPv6(h) ? new URL(`http://[${h}]/`).hostname.slice(1, -1) : h;
}
