import { defineConfig } from "vite";

// Served by `ripple up` under /ui/ (and by Holochain launchers from ripple.webhapp); fixed file names
// so the embedded copy changes only when the code does.
export default defineConfig({
  base: "./", // relative: the same build works under /ui/ and at a launcher's root
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // @holochain/client with libsodium is most of it; one file keeps the embedded copy simple.
    chunkSizeWarningLimit: 1024,
    rolldownOptions: { output: { entryFileNames: "app.js", assetFileNames: "[name][extname]" } },
  },
});
