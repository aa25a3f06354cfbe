//! The alert rules: `promtool check rules`, `promtool test rules`, and a runbook section and a
//! unit test for every alert.

use crate::{promtool, repo, run_promtool};
use std::collections::BTreeSet;

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests_and_each_has_a_runbook_section() {
    let rules = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap();
    let runbook = std::fs::read_to_string(repo("deploy/RUNBOOK.md")).unwrap();
    let tests = std::fs::read_to_string(repo("deploy/prometheus/alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 9, "{alerts:?}");
    // GitHub's anchor of a `## Heading` is the heading in lower case.
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(|heading| heading.trim().to_lowercase())
        .collect();
    let runbook_urls: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("runbook_url: "))
        .map(|url| url.trim_matches('"'))
        .collect();
    assert_eq!(
        runbook_urls.len(),
        alerts.len(),
        "every alert has a runbook_url"
    );
    for (alert, url) in alerts.iter().zip(&runbook_urls) {
        let anchor = url.strip_prefix("deploy/RUNBOOK.md#").unwrap_or_default();
        assert_eq!(anchor, alert.to_lowercase(), "{alert} points at {url}");
        assert!(
            anchors.contains(anchor),
            "RUNBOOK.md has no section {alert}"
        );
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no unit test"
        );
    }
    assert_eq!(
        rules.matches("summary: ").count(),
        alerts.len(),
        "every alert has a summary"
    );

    if let Some(promtool) = promtool("promtool check/test rules") {
        run_promtool(
            promtool,
            &["check", "rules", "deploy/prometheus/alerts.yml"],
            None,
        );
        run_promtool(
            promtool,
            &["test", "rules", "deploy/prometheus/alerts.test.yml"],
            None,
        );
        run_promtool(
            promtool,
            &[
                "check",
                "config",
                "deploy/prometheus/prometheus.example.yml",
            ],
            None,
        );
    }
}
