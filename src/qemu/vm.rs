//! One virtual machine: a qemu-system-x86_64 process, its disk, seed,
//! forwarded ports and serial log. The process is killed by its own pid
//! when the `Vm` is dropped, so no early return leaves a guest running.

use super::QemuError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// The accelerator is a setting, never guessed: `/dev/kvm` can exist where
/// KVM does not work (nested or paravirtual hosts), and TCG always works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcg" => Ok(Accel::Tcg),
            "kvm" => Ok(Accel::Kvm),
            _ => Err(format!("unknown accelerator `{s}`: expected tcg or kvm")),
        }
    }
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub system: PathBuf,
    pub img: PathBuf,
    pub accel: Accel,
    pub memory_mb: u32,
    pub cpus: u32,
    /// The guest CPU model; `None` picks the fastest for the accelerator.
    pub cpu: Option<String>,
}

impl QemuConfig {
    /// The `-cpu` model, if one was asked for. None keeps QEMU's default:
    /// under TCG, `-cpu max` made a bake slower here (the guest's AVX paths
    /// are emulated more slowly than the baseline ones), so it is a
    /// choice, not a default.
    pub fn cpu_model(&self) -> Option<&str> {
        self.cpu.as_deref()
    }
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            system: "qemu-system-x86_64".into(),
            img: "qemu-img".into(),
            accel: Accel::Tcg,
            memory_mb: 2048,
            cpus: 2,
            cpu: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Boot {
    /// The disk's own bootloader, as a cloud would boot it.
    Disk,
    /// Direct kernel boot: faster, for bakes on bases that ship their kernel.
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
}

/// A host port on 127.0.0.1 forwarded to a guest TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
}

#[derive(Debug, Clone)]
pub struct VmSpec {
    pub disk: PathBuf,
    pub seed: PathBuf,
    pub boot: Boot,
    pub forwards: Vec<Forward>,
    pub serial_log: PathBuf,
    /// A second disk, as a cloud attaches a data volume.
    pub data_disk: Option<DataDisk>,
}

/// A data disk with a serial, which the guest sees as
/// `/dev/disk/by-id/virtio-<serial>`, as Nova gives a Cinder volume the
/// first 20 characters of its id.
#[derive(Debug, Clone)]
pub struct DataDisk {
    pub path: PathBuf,
    pub serial: String,
}

/// A file name inside a QEMU option value: commas doubled, so a name
/// holding one cannot end the value and start another option.
fn opt_path(p: &std::path::Path) -> String {
    p.display().to_string().replace(',', ",,")
}

pub struct Vm {
    child: Child,
    pub pid: u32,
}

impl Vm {
    pub fn args(cfg: &QemuConfig, spec: &VmSpec) -> Vec<String> {
        let accel = match cfg.accel {
            Accel::Tcg => "tcg,thread=multi",
            Accel::Kvm => "kvm",
        };
        let mut netdev = "user,id=n0".to_string();
        for f in &spec.forwards {
            // Loopback only: a VM under test is never reachable from outside.
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest));
        }
        let mut a: Vec<String> = vec![
            "-machine".into(),
            "q35".into(),
            "-accel".into(),
            accel.into(),
            "-smp".into(),
            cfg.cpus.to_string(),
            "-m".into(),
            cfg.memory_mb.to_string(),
            "-display".into(),
            "none".into(),
            "-monitor".into(),
            "none".into(),
            "-no-reboot".into(),
            "-serial".into(),
            // Not opt_path: `-serial file:` takes the rest as the path.
            format!("file:{}", spec.serial_log.display()),
            "-drive".into(),
            format!(
                "file={},if=none,id=root,format=qcow2,cache=unsafe,discard=unmap",
                opt_path(&spec.disk)
            ),
            "-device".into(),
            // Booting by its own bootloader, the root disk is the one the
            // firmware boots (with a blank data disk beside it SeaBIOS tried
            // that one and hung). Not with -kernel: QEMU's linuxboot ROM
            // holds bootindex 0 then, and QEMU refuses a second one.
            match spec.boot {
                Boot::Disk => "virtio-blk-pci,drive=root,bootindex=0".into(),
                Boot::Kernel { .. } => "virtio-blk-pci,drive=root".into(),
            },
            "-drive".into(),
            format!(
                "file={},if=virtio,format=raw,readonly=on",
                opt_path(&spec.seed)
            ),
            "-netdev".into(),
            netdev,
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
            "-device".into(),
            "virtio-rng-pci".into(),
        ];
        if let Some(d) = &spec.data_disk {
            a.extend([
                "-drive".into(),
                format!(
                    "file={},if=none,id=data0,format=qcow2,cache=unsafe,discard=unmap",
                    opt_path(&d.path)
                ),
                "-device".into(),
                format!(
                    "virtio-blk-pci,drive=data0,serial={}",
                    d.serial.replace(',', ",,")
                ),
            ]);
        }
        if let Some(model) = cfg.cpu_model() {
            a.extend(["-cpu".into(), model.to_string()]);
        }
        if let Boot::Kernel {
            kernel,
            initrd,
            append,
        } = &spec.boot
        {
            a.extend([
                "-kernel".into(),
                kernel.display().to_string(),
                "-initrd".into(),
                initrd.display().to_string(),
                "-append".into(),
                append.clone(),
            ]);
        }
        a
    }

    pub fn start(cfg: &QemuConfig, spec: &VmSpec, stderr_log: &Path) -> Result<Vm, QemuError> {
        let stderr = std::fs::File::create(stderr_log).map_err(|source| QemuError::Io {
            path: stderr_log.to_path_buf(),
            source,
        })?;
        let args = Self::args(cfg, spec);
        tracing::debug!(qemu = %cfg.system.display(), ?args, "starting a VM");
        let child = Command::new(&cfg.system)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // A terminal's Ctrl-C goes to ingot, which stops the VM itself
            // and cleans up; qemu in its own process group does not see it.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| QemuError::Spawn {
                program: cfg.system.display().to_string(),
                source,
            })?;
        let pid = child.id().unwrap_or(0);
        Ok(Vm { child, pid })
    }

    /// The exit status once the guest has powered off, None while it runs.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the VM by its own pid and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// However the owner ends (an error, Ctrl-C dropping the operation), the VM
/// is killed and reaped before ingot goes on or exits, so no guest outlives
/// the command that started it.
impl Drop for Vm {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = self.child.start_kill();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_bind_loopback_only_and_accel_is_explicit() {
        let spec = VmSpec {
            disk: "/d.qcow2".into(),
            seed: "/s.iso".into(),
            boot: Boot::Disk,
            forwards: vec![Forward {
                host: 2222,
                guest: 22,
            }],
            serial_log: "/serial.log".into(),
            data_disk: None,
        };
        let args = Vm::args(&QemuConfig::default(), &spec).join(" ");
        assert!(args.contains("-accel tcg,thread=multi"), "{args}");
        assert!(!args.contains("-cpu"), "QEMU's default model: {args}");
        assert!(
            args.contains("user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22"),
            "{args}"
        );
        assert!(!args.contains("-kernel"));
        assert!(
            args.contains("virtio-blk-pci,drive=root,bootindex=0"),
            "{args}"
        );
    }

    #[test]
    fn a_kernel_boot_leaves_bootindex_0_to_qemus_linuxboot() {
        let spec = VmSpec {
            disk: "/d.qcow2".into(),
            seed: "/s.iso".into(),
            boot: Boot::Kernel {
                kernel: "/vmlinuz".into(),
                initrd: "/initrd.img".into(),
                append: "console=ttyS0".into(),
            },
            forwards: vec![],
            serial_log: "/serial.log".into(),
            data_disk: None,
        };
        let args = Vm::args(&QemuConfig::default(), &spec);
        assert!(
            args.contains(&"virtio-blk-pci,drive=root".to_string()),
            "{args:?}"
        );
        assert!(!args.iter().any(|a| a.contains("bootindex")), "{args:?}");
    }

    #[test]
    fn a_data_disk_has_its_serial_and_commas_in_names_stay_in_their_value() {
        let spec = VmSpec {
            disk: "/a,b/d.qcow2".into(),
            seed: "/s.iso".into(),
            boot: Boot::Disk,
            forwards: vec![],
            serial_log: "/serial.log".into(),
            data_disk: Some(DataDisk {
                path: "/x,format=raw/data.qcow2".into(),
                serial: "ingot-verify-state".into(),
            }),
        };
        let args = Vm::args(&QemuConfig::default(), &spec);
        assert!(
            args.contains(
                &"file=/a,,b/d.qcow2,if=none,id=root,format=qcow2,cache=unsafe,discard=unmap"
                    .to_string()
            ),
            "{args:?}"
        );
        assert!(args.contains(&"file=/x,,format=raw/data.qcow2,if=none,id=data0,format=qcow2,cache=unsafe,discard=unmap".to_string()), "{args:?}");
        assert!(
            args.contains(&"virtio-blk-pci,drive=data0,serial=ingot-verify-state".to_string()),
            "{args:?}"
        );
    }
}
