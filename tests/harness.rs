//! Self-tests of the integration-test harness in `tests/support` (no kiln involved).
mod support;

use support::*;

#[test]
fn smoke() {
    let reg = Registry::start(Mode::open());
    let r = reg.client().get(format!("{}/v2/", reg.url())).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
