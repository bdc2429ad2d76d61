//! The stub `libnvidia-ml.so.1` (`nvml_stub.c` beside this file), compiled with gcc into a
//! directory of its own, with the `nvml_stub.conf` that says which processes it reports.
//!
//! Include it with `#[path = "support/nvml_stub.rs"] mod nvml_stub;` (from `benches/`:
//! `#[path = "../tests/support/nvml_stub.rs"]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The stub's C source.
pub const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/nvml_stub.c");

/// The stub's two GPUs, as it reports them (the tests' expected values).
pub const UUIDS: [&str; 2] = [
    "GPU-00000000-1111-2222-3333-444444444444",
    "GPU-55555555-6666-7777-8888-999999999999",
];
pub const NAMES: [&str; 2] = ["NVIDIA Stub A100-SXM4-40GB", "NVIDIA Stub GeForce RTX 3090"];

/// One compiled stub in its own temporary directory (removed on drop).
pub struct NvmlStub {
    pub dir: tempfile::TempDir,
    /// `<dir>/libnvidia-ml.so.1`.
    pub lib: PathBuf,
}

impl NvmlStub {
    /// Compile the stub with `gcc -shared -fPIC`; panics with gcc's output when that fails.
    pub fn build() -> NvmlStub {
        NvmlStub::build_with(&[])
    }

    /// The stub as a driver from before GPM and the clocks-event rename: no `nvmlGpm*` symbols,
    /// no `nvmlDeviceGetCurrentClocksEventReasons`.
    pub fn build_old_driver() -> NvmlStub {
        NvmlStub::build_with(&["-DSTUB_OLD_DRIVER"])
    }

    fn build_with(defines: &[&str]) -> NvmlStub {
        let dir = tempfile::tempdir().expect("temp dir");
        let lib = dir.path().join("libnvidia-ml.so.1");
        let out = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror"])
            .args(defines)
            .arg("-o")
            .arg(&lib)
            .arg(SOURCE)
            .output()
            .expect("run gcc (Debian package gcc)");
        assert!(
            out.status.success(),
            "gcc failed to build the NVML stub:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        NvmlStub { dir, lib }
    }

    /// Write `nvml_stub.conf`: lines `compute|graphics <gpu> <pid> <bytes|na>`, `xid <gpu> <n>`,
    /// `hang <nvml function>`, `set <gpu> <field> <value>`, `unsupported <gpu> <field>`,
    /// `fail <gpu> <field>`, `deny <gpu> <field>` (see the C source for the fields and their
    /// defaults). Written to a temporary file and renamed, so
    /// that the stub never reads half of it.
    pub fn configure(&self, conf: &str) {
        let tmp = self.dir.path().join("nvml_stub.conf.tmp");
        std::fs::write(&tmp, conf).expect("write stub conf");
        std::fs::rename(&tmp, self.dir.path().join("nvml_stub.conf")).expect("rename stub conf");
    }

    /// Make `function` (e.g. `nvmlDeviceGetTemperature`) block until [`NvmlStub::configure`]
    /// writes a conf without the line; `rest` is the rest of the conf.
    pub fn hang(&self, function: &str, rest: &str) {
        self.configure(&format!("{rest}hang {function}\n"));
    }

    /// How many GPM samples are allocated and not yet freed (None before the first allocation).
    pub fn gpm_samples_live(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.dir.path().join("nvml_stub.stats")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("gpm_samples_live "))
            .and_then(|n| n.trim().parse().ok())
    }

    pub fn lib(&self) -> &Path {
        &self.lib
    }
}
