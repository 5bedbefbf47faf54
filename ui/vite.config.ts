import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

// On a phone, `tauri android dev` / `tauri ios dev` point the app at this machine's network
// address and set TAURI_DEV_HOST to it: the dev server must listen there (and its live reload
// too), not only on localhost.
const host = process.env.TAURI_DEV_HOST;

// Tauri serves the built files in the app; `tauri dev` loads this dev server instead.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: {
    port: 5173,
    strictPort: true,
    host: host || false,
    hmr: host ? { protocol: 'ws', host, port: 5174 } : undefined,
    fs: { allow: ['..'] },
  },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
  test: { environment: 'jsdom', include: ['tests/**/*.test.ts'] },
});
