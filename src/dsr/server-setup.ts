// `switchyard dsr-server`: what a real server behind a DSR balancer needs
// (issue 13, item 3), printed as shell commands or applied: the VIP as a /32
// on `lo` (so the server accepts packets for it and answers from it), ARP
// kept quiet about it (arp_ignore=1: answer only for addresses of the asking
// interface; arp_announce=2: never source ARP from the VIP), and for L3DSR an
// nftables rule that turns packets marked with the VIP's DSCP back into
// packets for the VIP. Every step looks at the current state first, so
// applying twice changes nothing, and --remove undoes exactly what was added.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { parseArgs } from 'node:util';

export interface DsrServerOptions {
  vip: string;
  /** L3DSR: the DSCP value (0..63) the balancer marks this VIP's packets with. */
  dscp?: number;
  remove: boolean;
}

/** One change: a shell-readable command, or a note that it is in place already. */
export interface Step {
  command: string[];
  /** Set when nothing needs doing. */
  already?: string;
  /** Runs in-process instead of `command` (writing the saved sysctl values). */
  run?: () => void;
}

/** What the commands read; gathered from the system, or given by tests. */
export interface ServerState {
  /** Addresses on lo labelled as Switchyard's, "a.b.c.d". */
  vips: string[];
  /** Current net.ipv4.conf.all values. */
  arpIgnore: number;
  arpAnnounce: number;
  /** Values saved before the first apply in this network namespace, if any. */
  saved: { arpIgnore: number; arpAnnounce: number } | undefined;
  /** Handles of the nftables rules for each "VIP DSCP" key. */
  nftRules: Map<string, number>;
  nftTable: boolean;
}

/** The label the VIP carries on lo: how --remove knows which /32s are Switchyard's. */
export const LO_LABEL = 'lo:sydsr';
const TABLE = 'switchyard_dsr';
const ruleComment = (vip: string, dscp: number): string => `switchyard-dsr ${vip} dscp ${dscp}`;

export function validate(opts: { vip?: string; l3dsr?: string }): string | DsrServerOptions {
  if (opts.vip === undefined) return '--vip ADDR is required';
  if (!isIPv4(opts.vip)) return `--vip expects an IPv4 address (IPv6 DSR is not supported), got ${JSON.stringify(opts.vip)}`;
  if (opts.l3dsr === undefined) return { vip: opts.vip, remove: false };
  if (!/^\d{1,2}$/.test(opts.l3dsr) || Number(opts.l3dsr) > 63) return `--l3dsr expects a DSCP value 0..63, got ${JSON.stringify(opts.l3dsr)}`;
  return { vip: opts.vip, dscp: Number(opts.l3dsr), remove: false };
}

/** The steps that bring the server from `state` to what `opts` asks for. */
export function plan(opts: DsrServerOptions, state: ServerState, savePath: string): Step[] {
  return opts.remove ? planRemove(opts, state, savePath) : planApply(opts, state, savePath);
}

function planApply(opts: DsrServerOptions, state: ServerState, savePath: string): Step[] {
  const steps: Step[] = [];
  const addr = ['ip', 'addr', 'add', `${opts.vip}/32`, 'dev', 'lo', 'label', LO_LABEL];
  steps.push(state.vips.includes(opts.vip) ? { command: addr, already: `${opts.vip}/32 is on lo` } : { command: addr });
  if (state.saved === undefined && (state.arpIgnore !== 1 || state.arpAnnounce !== 2)) {
    const saved = { arpIgnore: state.arpIgnore, arpAnnounce: state.arpAnnounce };
    steps.push({ command: ['#', 'save', `arp_ignore=${saved.arpIgnore}`, `arp_announce=${saved.arpAnnounce}`, 'to', savePath], run: () => save(savePath, saved) });
  }
  steps.push(sysctl('arp_ignore', 1, state.arpIgnore), sysctl('arp_announce', 2, state.arpAnnounce));
  if (opts.dscp !== undefined) {
    const key = `${opts.vip} ${opts.dscp}`;
    const table = ['nft', 'add', 'table', 'ip', TABLE];
    // raw priority: before conntrack, so the rewritten packet is never tracked under the server's own address.
    const chain = ['nft', 'add', 'chain', 'ip', TABLE, 'prerouting', '{ type filter hook prerouting priority raw; policy accept; }'];
    const rule = ['nft', 'add', 'rule', 'ip', TABLE, 'prerouting', 'ip', 'dscp', String(opts.dscp), 'ip', 'daddr', 'set', opts.vip, 'notrack', 'comment', `"${ruleComment(opts.vip, opts.dscp)}"`];
    if (state.nftRules.has(key)) steps.push({ command: rule, already: `the nftables rule for DSCP ${opts.dscp} -> ${opts.vip} exists` });
    else steps.push(...(state.nftTable ? [] : [{ command: table }, { command: chain }]), { command: rule });
  }
  return steps;
}

function planRemove(opts: DsrServerOptions, state: ServerState, savePath: string): Step[] {
  const steps: Step[] = [];
  const del = ['ip', 'addr', 'del', `${opts.vip}/32`, 'dev', 'lo'];
  steps.push(state.vips.includes(opts.vip) ? { command: del } : { command: del, already: `${opts.vip}/32 is not on lo` });
  const others = state.vips.filter((v) => v !== opts.vip);
  if (others.length > 0) {
    steps.push({ command: ['#', 'arp_ignore/arp_announce', 'kept'], already: `still needed by ${others.join(', ')}` });
  } else if (state.saved !== undefined) {
    const saved = state.saved;
    steps.push(sysctl('arp_ignore', saved.arpIgnore, state.arpIgnore), sysctl('arp_announce', saved.arpAnnounce, state.arpAnnounce));
    steps.push({ command: ['rm', savePath], run: () => rmSync(savePath, { force: true }) });
  }
  for (const [key, handle] of state.nftRules) {
    if (key.split(' ')[0] !== opts.vip || (opts.dscp !== undefined && key !== `${opts.vip} ${opts.dscp}`)) continue;
    steps.push({ command: ['nft', 'delete', 'rule', 'ip', TABLE, 'prerouting', 'handle', String(handle)] });
  }
  const remaining = [...state.nftRules.keys()].filter((k) => k.split(' ')[0] !== opts.vip || (opts.dscp !== undefined && k !== `${opts.vip} ${opts.dscp}`));
  if (state.nftTable && remaining.length === 0) steps.push({ command: ['nft', 'delete', 'table', 'ip', TABLE] });
  return steps;
}

function sysctl(name: 'arp_ignore' | 'arp_announce', want: number, current: number): Step {
  const command = ['sysctl', '-q', '-w', `net.ipv4.conf.all.${name}=${want}`];
  return current === want ? { command, already: `net.ipv4.conf.all.${name} is ${want}` } : { command };
}

function save(path: string, values: { arpIgnore: number; arpAnnounce: number }): void {
  mkdirSync(SAVE_DIR, { recursive: true });
  writeFileSync(path, JSON.stringify(values));
}

const SAVE_DIR = '/run/switchyard-dsr';

/** Per network namespace: the sysctls are, so their saved values must be too. */
export function savePathForThisNamespace(): string {
  return `${SAVE_DIR}/netns-${statSync('/proc/self/ns/net').ino}.json`;
}

/** Reads the state the plan depends on from this machine (this network namespace). */
export function readState(savePath: string): ServerState {
  const addrs = execFileSync('ip', ['-o', '-4', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' });
  const vips: string[] = [];
  for (const line of addrs.split('\n')) {
    const m = /inet (\d+\.\d+\.\d+\.\d+)\/32 .*\blo:sydsr\b/.exec(line);
    if (m) vips.push(m[1]!);
  }
  const readSysctl = (name: string): number => Number(readFileSync(`/proc/sys/net/ipv4/conf/all/${name}`, 'utf8').trim());
  const nftRules = new Map<string, number>();
  let nftTable = false;
  try {
    const listing = execFileSync('nft', ['-a', 'list', 'table', 'ip', TABLE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    nftTable = true;
    for (const m of listing.matchAll(/comment "switchyard-dsr (\S+) dscp (\d+)" # handle (\d+)/g)) nftRules.set(`${m[1]} ${m[2]}`, Number(m[3]));
  } catch {
    // No such table (or no nft): nothing of ours is there.
  }
  const saved = existsSync(savePath) ? (JSON.parse(readFileSync(savePath, 'utf8')) as ServerState['saved']) : undefined;
  return { vips, arpIgnore: readSysctl('arp_ignore'), arpAnnounce: readSysctl('arp_announce'), saved, nftRules, nftTable };
}

/** Runs the steps that are not in place yet; throws with the failing command's error. */
export function applySteps(steps: readonly Step[]): void {
  for (const step of steps) {
    if (step.already !== undefined) continue;
    if (step.run !== undefined) {
      step.run();
      continue;
    }
    const [cmd, ...args] = step.command;
    // nft joins its arguments and parses them again: the comment keeps its double quotes.
    execFileSync(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  }
}

/** Shell text of the plan: commands to run, and comments for what is in place. */
export function formatSteps(steps: readonly Step[]): string {
  return steps
    .map((s) => {
      const text = s.command.map((a) => (a.includes(' ') && !a.startsWith('"') ? `'${a}'` : a)).join(' ');
      return s.already !== undefined ? `# in place: ${s.already}` : text;
    })
    .join('\n');
}

const USAGE = `Usage: switchyard dsr-server --vip ADDR [--l3dsr DSCP] [--apply] [--remove]

Prints the commands a real server behind a DSR balancer needs (the VIP on lo,
arp_ignore=1 and arp_announce=2, and with --l3dsr the nftables rule that
restores the VIP from the DSCP mark); --apply runs the ones not yet in place
(root); --remove undoes them (printed, or run with --apply).
`;

/** `switchyard dsr-server ...`: exit 0 done, 1 a command failed, 2 bad command line. */
export function runDsrServerCommand(argv: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: { vip: { type: 'string' }, l3dsr: { type: 'string' }, apply: { type: 'boolean' }, remove: { type: 'boolean' }, help: { type: 'boolean' } },
    }));
  } catch (err) {
    process.stderr.write(`switchyard dsr-server: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const opts = validate(values);
  if (typeof opts === 'string') {
    process.stderr.write(`switchyard dsr-server: ${opts}\n${USAGE}`);
    return 2;
  }
  opts.remove = values.remove === true;
  const savePath = savePathForThisNamespace();
  const steps = plan(opts, readState(savePath), savePath);
  process.stdout.write(`${formatSteps(steps)}\n`);
  if (!values.apply) return 0;
  try {
    applySteps(steps);
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    const hint = /not permitted/i.test(stderr ?? '') ? ' (applying needs root or CAP_NET_ADMIN)' : '';
    process.stderr.write(`switchyard dsr-server: ${(err as Error).message.split('\n')[0]}${stderr ? `: ${stderr}` : ''}${hint}\n`);
    return 1;
  }
  process.stdout.write(opts.remove ? `# removed ${opts.vip}\n` : `# applied: ${opts.vip} is served from lo\n`);
  return 0;
}
