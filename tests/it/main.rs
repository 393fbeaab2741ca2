//! kiln's integration tests, as one test binary (`cargo test --test it`): the shared harness in `support`, and
//! one module per concern. Each test runs kiln (`CARGO_BIN_EXE_kiln`) as a child process, in its own temp
//! directories, and checks what it made with independent tools (skopeo, umoci, oci-image-tool, podman, a real
//! registry). Tests run on parallel threads of this one process: nothing here may change process-wide state
//! (environment variables, the current directory, the umask); pass such things to the child `Command` instead.

mod support;

mod architecture;
mod bases;
mod engines;
mod errors;
mod exclude;
mod experience;
mod first_minutes;
mod harness;
mod integrity;
mod layout;
mod platforms;
mod provenance;
mod referrers;
mod registry;
mod sbom;
mod supply_chain;
mod toml_archive;
mod versions;
