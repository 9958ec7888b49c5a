'use strict';
// index.d.ts type-checks, with an example of the client's use (needs the typescript dev dependency).

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

let ts = null;
try {
  ts = require('typescript');
} catch {
  // not installed (npm ci --omit=dev)
}

test('index.d.ts type-checks against an example of use', { skip: ts === null && 'typescript not installed' }, () => {
  const root = path.join(__dirname, '..');
  const program = ts.createProgram([path.join(root, 'index.d.ts'), path.join(__dirname, 'types-usage.ts')], {
    noEmit: true, strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10, esModuleInterop: true, types: ['node'], lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    typeRoots: [path.join(root, 'node_modules', '@types')],
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${path.relative(root, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
  });
  assert.deepEqual(diagnostics, []);
});
