//! End-to-end tests of the simulator over real HTTP.

use super::*;

#[test]
fn starts() {
    let sim = Simulator::start(Scenario::default()).unwrap();
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
}
