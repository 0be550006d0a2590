#[test]
fn fakesnow_starts_answers_and_is_gone_after_drop() {
    let server = testkit::Fakesnow::start();
    let pid = server.pid();
    assert!(testkit::process_alive(pid));
    drop(server);
    assert!(!testkit::process_alive(pid), "fakesnow {pid} left behind");
}
