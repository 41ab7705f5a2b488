/**
 * Loads @mlc-ai/web-xgrammar (the WebAssembly build of xgrammar, the grammar engine vLLM and SGLang use
 * for structured outputs) into Node.
 *
 * Its `lib/index.js` is a UMD bundle inside a `"type": "module"` package, so Node's ESM loader reads it
 * as an ES module, finds no exports and `require` refuses it for the same reason. The bundle's CommonJS
 * branch works, though: compiling the file as a CommonJS module (node:module's `Module#_compile`, what
 * `require` itself does for a .cjs file) gives its exports. The types come from the package's .d.ts.
 */
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname } from 'node:path';

export type XGrammar = typeof import('@mlc-ai/web-xgrammar');

/** Node's CommonJS module internals that the public type of `Module` leaves out. */
interface CommonJsModule {
  filename: string;
  paths: string[];
  exports: unknown;
  _compile(source: string, filename: string): void;
}
interface CommonJsModuleStatics {
  _nodeModulePaths(dir: string): string[];
}

let loaded: XGrammar | undefined;

/** The xgrammar bindings, loaded once per process (the WASM module initialises on first use). */
export function xgrammar(): XGrammar {
  if (loaded) return loaded;
  const path = createRequire(import.meta.url).resolve('@mlc-ai/web-xgrammar');
  const mod = new Module(path) as unknown as CommonJsModule;
  mod.filename = path;
  mod.paths = (Module as unknown as CommonJsModuleStatics)._nodeModulePaths(dirname(path));
  mod._compile(readFileSync(path, 'utf8'), path);
  loaded = mod.exports as XGrammar;
  return loaded;
}
