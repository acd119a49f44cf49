{
  description = "Ripple mesh dev shell: Rust with the wasm32 target, and the Holochain 0.7 tools";

  # holonix-style: Holochain's own flake provides holochain, hc, lair-keystore and
  # kitsune2-bootstrap-srv for the 0.7 line; rust-overlay provides the pinned toolchain.
  inputs = {
    holonix.url = "github:holochain/holonix?ref=main-0.7";
    nixpkgs.follows = "holonix/nixpkgs";
    flake-parts.follows = "holonix/flake-parts";
    rust-overlay.url = "github:oxalica/rust-overlay";
    rust-overlay.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs = inputs@{ flake-parts, ... }:
    flake-parts.lib.mkFlake { inherit inputs; } {
      systems = builtins.attrNames inputs.holonix.devShells;
      perSystem = { inputs', system, ... }:
        let
          pkgs = import inputs.nixpkgs { inherit system; overlays = [ inputs.rust-overlay.overlays.default ]; };
          # The compiler the DNA hashes are pinned with (manifests/holochain/versions.json).
          rust = pkgs.rust-bin.stable."1.95.0".default.override {
            targets = [ "wasm32-unknown-unknown" ];
            extensions = [ "clippy" "rustfmt" ];
          };
        in {
          formatter = pkgs.nixpkgs-fmt;
          devShells.default = pkgs.mkShell {
            inputsFrom = [ inputs'.holonix.devShells.default ];
            packages = [ rust pkgs.pkg-config pkgs.perl pkgs.git ];
            shellHook = ''
              export CARGO_TARGET_DIR=''${CARGO_TARGET_DIR:-$HOME/.cache/ripple/target}
              echo "Ripple dev shell: cargo xtask test | hc sandbox | holochain --version"
            '';
          };
        };
    };
}
