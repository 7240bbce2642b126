//! The base's apt sources, checked before the bake installs anything: a
//! golden image built on a base that carries a stray repository (the field
//! journal's servers ran a "Kaas Ubuntu 2404 Kube" image with a Kubernetes
//! repository and a legacy apt-key keyring, by mistake) would install from
//! it and keep it. The guard runs as the bake's first `bootcmd`, before
//! cloud-init writes the layers' own sources, and accepts only the
//! distribution's suites (`<codename>`, `-updates`, `-security`,
//! `-backports`) with its own components, from any mirror, and only the
//! distribution's keyrings in `trusted.gpg.d`. Anything else stops the bake
//! with the protocol's failure marker, naming the file and the line, and
//! powers the guest off before a package is installed.

use crate::model::Distro;
use crate::protocol;

/// The guard as one `sh -c` script; `declared` are the file names (in
/// `sources.list.d`) of the layers' own sources, which a base made by an
/// earlier bake of the same layers may carry. `INGOT_ROOT` lets tests run
/// it on a tree of their own.
pub fn script(distro: Distro, declared: &[String]) -> String {
    let (components, keyrings) = match distro {
        Distro::Debian12 => (
            "main contrib non-free non-free-firmware",
            "debian-archive-*",
        ),
        Distro::Ubuntu2404 => (
            "main restricted universe multiverse",
            "ubuntu-keyring-* ubuntu-archive-* ubuntu-cloudimage-* ubuntu-pro-*",
        ),
    };
    format!(
        r#"r=${{INGOT_ROOT:-}}
codename=$(. "$r/etc/os-release" && echo "$VERSION_CODENAME")
bad=$(
  for f in "$r"/etc/apt/sources.list "$r"/etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    case " {declared} " in *" ${{f##*/}} "*) continue ;; esac
    awk -v f="${{f#$r}}" -v c="$codename" -v comps="{components}" '
      BEGIN {{ n = split(comps, a, " "); for (i = 1; i <= n; i++) ok[a[i]] = 1 }}
      /^[ \t]*(#|$)/ {{ next }}
      {{
        i = 2; if ($2 ~ /^\[/) {{ while (i <= NF && $i !~ /\]$/) i++; i++ }}
        suite = $(i + 1); good = (suite == c || suite == c "-updates" || suite == c "-security" || suite == c "-backports" || suite == c "/updates")
        for (j = i + 2; j <= NF; j++) if (!($j in ok)) good = 0
        if (!good) printf "%s:%d: %s; ", f, NR, $0
      }}' "$f"
  done
  for f in "$r"/etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v f="${{f#$r}}" -v c="$codename" -v comps="{components}" '
      function check() {{
        if (!stanza || disabled) return
        good = 1
        n = split(suites, s, " "); for (i = 1; i <= n; i++) if (!(s[i] == c || s[i] == c "-updates" || s[i] == c "-security" || s[i] == c "-backports")) good = 0
        n = split(components, k, " "); for (i = 1; i <= n; i++) if (!(k[i] in ok)) good = 0
        if (!good) printf "%s:%d: Suites: %s Components: %s; ", f, start, suites, components
      }}
      BEGIN {{ n = split(comps, a, " "); for (i = 1; i <= n; i++) ok[a[i]] = 1 }}
      /^[ \t]*#/ {{ next }}
      /^[ \t]*$/ {{ check(); stanza = 0; disabled = 0; suites = ""; components = ""; next }}
      {{ if (!stanza) {{ stanza = 1; start = NR }} }}
      tolower($1) == "suites:" {{ $1 = ""; suites = $0; sub(/^ +/, "", suites) }}
      tolower($1) == "components:" {{ $1 = ""; components = $0; sub(/^ +/, "", components) }}
      tolower($1) == "enabled:" && tolower($2) == "no" {{ disabled = 1 }}
      END {{ check() }}' "$f"
  done
  [ -s "$r/etc/apt/trusted.gpg" ] && printf '%s; ' "/etc/apt/trusted.gpg (a legacy apt-key keyring)"
  for k in "$r"/etc/apt/trusted.gpg.d/*; do
    [ -e "$k" ] || continue
    case "${{k##*/}}" in {patterns}) ;; *) printf '%s; ' "${{k#$r}} (a keyring trusted for every source)" ;; esac
  done
)
if [ -n "$bad" ]; then
  msg="{failed} the base image has apt sources or keys that are not {distro}'s own: ${{bad%; }}"
  echo "$msg"
  [ -n "$r" ] || {{ echo "$msg" >/dev/console; systemctl --no-block poweroff; }}
  exit 1
fi
echo "{progress}base apt sources: {distro}'s own only"
"#,
        failed = protocol::BAKE_FAILED,
        progress = protocol::PROGRESS,
        distro = distro.name(),
        patterns = keyrings.replace(' ', "|"),
        // Plain file names only (the caller filters them).
        declared = declared.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(distro: Distro, files: &[(&str, &str)]) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let os = match distro {
            Distro::Debian12 => "VERSION_CODENAME=bookworm\n",
            Distro::Ubuntu2404 => "VERSION_CODENAME=noble\n",
        };
        let mut all = vec![("etc/os-release", os)];
        all.extend_from_slice(files);
        for (path, text) in all {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("etc/apt/sources.list.d")).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(distro, &["jitsi.list".to_string()]))
            .env("INGOT_ROOT", dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn debians_own_sources_pass() {
        let (ok, out) = run(
            Distro::Debian12,
            &[
                (
                    "etc/apt/sources.list",
                    "# comment\ndeb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-updates main\ndeb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://security.debian.org/debian-security bookworm-security main contrib\n",
                ),
                ("etc/apt/trusted.gpg.d/debian-archive-bookworm-stable.asc", "k"),
                // A layer's own source, from an earlier bake.
                (
                    "etc/apt/sources.list.d/jitsi.list",
                    "deb https://download.jitsi.org stable/\n",
                ),
            ],
        );
        assert!(ok, "{out}");
        assert_eq!(out, "[ingot] base apt sources: debian-12's own only\n");
    }

    #[test]
    fn ubuntus_deb822_sources_pass() {
        let (ok, out) = run(
            Distro::Ubuntu2404,
            &[(
                "etc/apt/sources.list.d/ubuntu.sources",
                "Types: deb\nURIs: http://nova.clouds.archive.ubuntu.com/ubuntu/\nSuites: noble noble-updates noble-backports\nComponents: main restricted universe multiverse\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\nTypes: deb\nURIs: http://security.ubuntu.com/ubuntu\nSuites: noble-security\nComponents: main restricted universe multiverse\n",
            )],
        );
        assert!(ok, "{out}");
    }

    #[test]
    fn the_journals_kubernetes_base_is_refused() {
        let (ok, out) = run(
            Distro::Ubuntu2404,
            &[
                (
                    "etc/apt/sources.list.d/ubuntu.sources",
                    "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu/\nSuites: noble noble-updates\nComponents: main universe\n",
                ),
                (
                    "etc/apt/sources.list.d/kubernetes.list",
                    "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /\n",
                ),
                ("etc/apt/trusted.gpg", "legacy"),
            ],
        );
        assert!(!ok);
        assert_eq!(
            out,
            "INGOT-BAKE-FAILED the base image has apt sources or keys that are not ubuntu-24.04's own: /etc/apt/sources.list.d/kubernetes.list:1: deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /; /etc/apt/trusted.gpg (a legacy apt-key keyring)\n"
        );
    }

    #[test]
    fn another_release_or_component_or_keyring_is_refused() {
        let (ok, out) = run(
            Distro::Debian12,
            &[
                (
                    "etc/apt/sources.list.d/debian.sources",
                    "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
                ),
                ("etc/apt/trusted.gpg.d/docker.gpg", "k"),
            ],
        );
        assert!(!ok);
        assert!(
            out.contains("/etc/apt/sources.list.d/debian.sources:1: Suites: trixie"),
            "{out}"
        );
        assert!(
            out.contains("/etc/apt/trusted.gpg.d/docker.gpg (a keyring trusted for every source)"),
            "{out}"
        );
    }
}
