# Recipes for people; CI runs `scripts/test` (the same as `just ci`).

# every check CI runs: fmt, clippy, all tests (needs `scripts/deps` once)
ci:
    scripts/test

# install the real tools the tests use (cloud-init, promtool, nginx, sshd, ...)
deps:
    scripts/deps

test *ARGS:
    cargo test --release {{ARGS}}

# render one image into out/<name>
render IMAGE="jitsi-meet":
    cargo run --release -- render images/{{IMAGE}}.yaml --out out/{{IMAGE}}

# whole-process render benchmark (figures in docs/benchmarks.md)
bench:
    cargo bench --bench render

# accept changed golden files after reading the diff
bless:
    INGOT_BLESS=1 cargo test --release golden

# end to end on real VMs: base, build web-debian, verify, rebuild, Ctrl-C
e2e:
    scripts/e2e

# VM benchmarks side by side: ingot vs Packer 1.6.6, golden vs from-scratch boot (~30 min)
bench-vm:
    benches/vm.sh

# publish 1 GiB to the playground's Glance: ingot vs openstack CLI vs curl (~4 min)
bench-publish:
    benches/publish.sh

# cloud builds in the playground's Nova: ingot vs Packer 1.6.6 openstack builder, interruptions, --jobs 10 (~35 min)
bench-cloud:
    benches/cloud-build.sh

# deploys in the playground: ingot deploy / forward / rollback vs the same forward deploy with the openstack CLI (~25 min at load 8)
bench-deploy:
    benches/deploy.sh
