// figment::Jail's closures return figment::Error, which is large; it is test-only plumbing.
#![allow(clippy::result_large_err)]

use super::*;
use figment::Jail;
use sha2::{Digest, Sha256};

/// A node config with one tenant `t` whose server key is `key`, plus `extra` TOML.
fn node_toml(key: &str, extra: &str) -> String {
    format!(
        "[tenants.t]\nserver_keys = [{{ sha256 = \"{}\" }}]\n{extra}",
        hex::encode(Sha256::digest(key))
    )
}

fn reloader_for(file: &str) -> (Reloader, LiveTenants) {
    let config = Config::load(Some(std::path::Path::new(file))).unwrap();
    let tenants = LiveTenants::new(Tenants::build(&config).unwrap());
    let reloader = Reloader::new(Some(file.into()), config, tenants.clone(), None);
    (reloader, tenants)
}

#[test]
fn a_good_file_swaps_the_server_keys_and_a_bad_one_keeps_them() {
    Jail::expect_with(|jail| {
        jail.create_file("node.toml", &node_toml("old-key-0001", ""))?;
        let (reloader, tenants) = reloader_for("node.toml");
        assert!(tenants.by_server_key("old-key-0001").is_some());

        jail.create_file("node.toml", &node_toml("new-key-0002", ""))?;
        let report = reloader.reload().map_err(|e| e.to_string())?;
        assert_eq!(report.outcome, "applied");
        assert_eq!(report.tenants, 1);
        assert!(report.restart_needed.is_empty(), "{report:?}");
        assert!(tenants.by_server_key("new-key-0002").is_some());
        assert!(tenants.by_server_key("old-key-0001").is_none());

        // Two problems in one file: both reported, nothing changed.
        jail.create_file(
            "node.toml",
            &node_toml(
                "third-key-0003",
                "max_ttl_seconds = 1\n[tenants.u]\nserver_keys = [{ file = \"missing.key\" }]\n",
            ),
        )?;
        let ConfigErrors(problems) = reloader.reload().unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("tenants.t.max_ttl_seconds")),
            "{problems:#?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("missing.key")),
            "{problems:#?}"
        );
        assert!(
            tenants.by_server_key("new-key-0002").is_some(),
            "the old table stays"
        );
        assert!(tenants.by_server_key("third-key-0003").is_none());

        // A file that does not parse is refused the same way.
        jail.create_file("node.toml", "[tenants.t\n")?;
        assert!(reloader.reload().is_err());
        assert!(tenants.by_server_key("new-key-0002").is_some());
        Ok(())
    });
}

#[test]
fn changes_that_need_a_restart_are_named() {
    Jail::expect_with(|jail| {
        jail.create_file("node.toml", &node_toml("key-0001", ""))?;
        let (reloader, _) = reloader_for("node.toml");
        jail.create_file(
            "node.toml",
            &node_toml(
                "key-0001",
                "[tenants.t.apps.ios]\nplatform = \"apns\"\nbundle_id = \"com.example.a\"\n\
                 [registry]\nshards = 3\n",
            ),
        )?;
        let report = reloader.reload().map_err(|e| e.to_string())?;
        // An app added: it has no provider until a restart starts one.
        assert_eq!(report.restart_needed, ["registry", "tenants.t.apps.ios"]);
        Ok(())
    });
}
