// The CI audit verdict on npm's own report shapes: findings block at high/critical, a registry that refuses the
// advisory request is reported as "not run".

import { describe, expect, it } from 'vitest';
import { auditVerdict } from '../../src/util/audit.js';

const report = (counts: Record<string, number>, vulns: Record<string, { severity: string; fixAvailable?: unknown }> = {}) => ({
  auditReportVersion: 2,
  vulnerabilities: vulns,
  metadata: { vulnerabilities: { info: 0, low: 0, moderate: 0, high: 0, critical: 0, total: 0, ...counts } },
});

describe('auditVerdict', () => {
  it('passes a clean report and moderate findings, blocks on high and critical', () => {
    expect(auditVerdict(report({}))).toMatchObject({ ran: true, blocking: 0 });
    expect(auditVerdict(report({ moderate: 2, total: 2 }, { a: { severity: 'moderate' } })).blocking).toBe(0);
    const bad = auditVerdict(report({ high: 1, critical: 1, total: 2 }, { b: { severity: 'high', fixAvailable: true }, c: { severity: 'critical' } }));
    expect(bad.blocking).toBe(2);
    expect(bad.lines).toEqual(['npm audit: high     b (fix available)', 'npm audit: critical c', expect.stringMatching(/high 1, critical 1/)]);
  });

  it('says the audit did not run when the registry refused the advisory request', () => {
    const v = auditVerdict({ message: '405 Method Not Allowed - POST https://registry.example/-/npm/v1/security/advisories/bulk', error: { summary: '' } });
    expect(v).toMatchObject({ ran: false, blocking: 0 });
    expect(v.lines[0]).toMatch(/^npm audit: NOT RUN: .*405 Method Not Allowed/);
  });
});
