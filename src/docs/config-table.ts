// docs/configuration.md's reference: every variable of src/config.ts's table, by section, with its default, the
// values it accepts and what it does.

import { CONFIG_GROUPS, CONFIG_SETTINGS } from '../config.js';
import { markdownTable } from './markdown.js';

const code = (s: string) => (/^[\w.,:/*-]+$/.test(s) ? `\`${s}\`` : s);

export function renderConfigTable(): string {
  const sections: string[] = [];
  for (const [group, title] of Object.entries(CONFIG_GROUPS)) {
    const rows = CONFIG_SETTINGS.filter((s) => s.group === group).map((s) => [`\`${s.env}\``, code(s.defaultDoc), s.accepts, s.doc]);
    if (rows.length > 0) sections.push(`### ${title}\n\n${markdownTable(['variable', 'default', 'accepts', 'meaning'], rows)}`);
  }
  return sections.join('\n\n');
}
