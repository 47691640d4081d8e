// The verdict of `npm audit --omit=dev --json` for CI: blocking when a production dependency has a high or critical
// advisory; "not run" when npm could not ask the registry's advisory service (its JSON then has no metadata).

export interface AuditReport {
  vulnerabilities?: Record<string, { severity: string; fixAvailable?: unknown }>;
  metadata?: { vulnerabilities: Record<string, number> };
  error?: { summary?: string };
  message?: string;
}

export interface AuditVerdict {
  ran: boolean;
  /** high + critical */
  blocking: number;
  /** One line per finding, then a summary (or why the audit did not run). */
  lines: string[];
}

export function auditVerdict(report: AuditReport): AuditVerdict {
  if (!report.metadata) {
    const why = report.message || report.error?.summary || 'no report';
    return { ran: false, blocking: 0, lines: [`npm audit: NOT RUN: the registry's advisory service could not be asked (${why}).`] };
  }
  const counts = report.metadata.vulnerabilities;
  const lines = Object.entries(report.vulnerabilities ?? {}).map(
    ([name, v]) => `npm audit: ${v.severity.padEnd(8)} ${name}${v.fixAvailable ? ' (fix available)' : ''}`,
  );
  lines.push(`npm audit --omit=dev: ${Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  return { ran: true, blocking: (counts.high ?? 0) + (counts.critical ?? 0), lines };
}
