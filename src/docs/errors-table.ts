// docs/errors.md's reference: every code of the one error table (src/serve/errors.ts), by status, with its message
// (`…` and `N` where the case fills in text or a number) and when it is answered.

import { ERROR_MEANINGS, Errors } from '../serve/errors.js';
import { markdownTable } from './markdown.js';

type Code = keyof typeof Errors;

/** An error of the table built without its arguments: its status, and its message with the placeholders left in. */
function template(code: Code): { status: number; message: string } {
  const e = (Errors[code] as unknown as () => { statusCode: number; message: string })();
  const message = e.message === '%s' ? '(names the case)' : e.message.replace(/%s/g, '…').replace(/%d/g, 'N');
  return { status: e.statusCode, message };
}

export function renderErrorsTable(): string {
  const rows = (Object.keys(Errors) as Code[])
    .map((code) => ({ code, ...template(code) }))
    .sort((a, b) => a.status - b.status || a.code.localeCompare(b.code));
  return markdownTable(
    ['status', 'code', 'message', 'when'],
    rows.map((r) => [`${r.status}${r.status === 503 ? ' + `Retry-After`' : ''}`, `\`${r.code}\``, r.message, ERROR_MEANINGS[r.code]]),
  );
}
