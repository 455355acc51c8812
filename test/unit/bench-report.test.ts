// The bench's chart and progress (issue 15, item 3): the SVG has one bar per
// system and scenario in each panel, escapes what it prints, marks failed
// cells; time left follows the cells done so far.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchChart } from '../../bench/lib/chart.js';
import { Progress } from '../../bench/lib/progress.js';
import type { Row } from '../../bench/lib/report.js';

const row = (scenario: string, system: string, rps?: number, cpuUsPerReq?: number, failed?: string): Row => ({ scenario, system, rounds: 1, rps, cpuUsPerReq, errors: 0, non2xx: 0, failed });

describe('bench chart', () => {
  const rows = [row('100b', 'switchyard', 9000, 30), row('100b', 'nginx', 12000, 18), row('16k', 'switchyard', 5000, 60), row('16k', 'nginx', undefined, undefined, 'to start')];
  const svg = benchChart(rows, 'subtitle <&>');

  it('draws one bar per measured cell in each panel, and marks the failed one', () => {
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.equal(svg.match(/<rect x="[\d.]+" y="[\d.]+" width="24"/g)?.length, 3 * 2);
    assert.equal(svg.match(/>×<\/text>/g)?.length, 2);
    assert.ok(svg.includes('>12k<') && svg.includes('>18.0<'), 'values on the bars');
  });

  it('gives each system its own colour, the same in both panels', () => {
    const fills = (system: string) => new Set([...svg.matchAll(new RegExp(`fill="(#[0-9a-f]{6})"><title>[^<]* · ${system}:`, 'g'))].map((m) => m[1]));
    assert.equal(fills('switchyard').size, 1);
    assert.equal(fills('nginx').size, 1);
    assert.notDeepEqual([...fills('switchyard')], [...fills('nginx')]);
  });

  it('escapes text', () => {
    assert.ok(svg.includes('subtitle &lt;&amp;&gt;'));
    assert.ok(!benchChart([row('a<b', 'x"y', 1, 1)], '').includes('a<b'));
  });
});

describe('bench progress', () => {
  it('estimates from the plan before the first cell, then from the cells done', () => {
    assert.equal(Progress.left(0, 10, 0, 7), 70);
    assert.equal(Progress.left(5, 10, 100, 7), 100);
    assert.equal(Progress.left(10, 10, 100, 7), 0);
  });
});
