//! The group schema (driver, credentials, renamed commands, `admin` by driver) and the
//! shipped example file, parsed as a sentinel reads them.

mod group_schema {
    use super::super::*;

    const HEAD: &str = r#"
id = 1
grpc = "127.0.0.1:27379"
dir = "d"
token = "t"
peers = [{ id = 1, address = "127.0.0.1:27379" }]
"#;

    fn parse(groups: &str) -> Result<SentinelConfig, String> {
        SentinelConfig::parse(&format!("{HEAD}{groups}"), "s.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn a_resp_group_carries_its_driver_credentials_and_renames() {
        let c = parse(
            r#"
[[groups]]
name = "g"
driver = "resp"
auth_user = "sentinel"
auth_pass = "secret"
rename_commands = { config = "XCONFIG", "client" = "XCLIENT" }
nodes = [
  { name = "a", data = "10.0.0.1:6379" },
  { name = "b", data = "10.0.0.2:6379", admin = "10.0.0.2:6379" },
]
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let spec = c.groups[0].spec();
        assert_eq!(spec.driver, Driver::Resp);
        assert_eq!(
            (spec.auth_user.as_str(), spec.auth_pass.as_str()),
            ("sentinel", "secret")
        );
        // Names upper-cased; the lookup is case-insensitive; others unchanged.
        assert_eq!(
            spec.rename_commands.keys().collect::<Vec<_>>(),
            ["CLIENT", "CONFIG"]
        );
        assert_eq!(spec.command_name("Config"), "XCONFIG");
        assert_eq!(spec.command_name("PING"), "PING");
        // A resp node is managed at its data address.
        for n in &spec.nodes {
            assert_eq!(n.admin, n.data, "{}", n.name);
        }
        // Without the new keys: a grpc group with no credentials (as before).
        let c = parse(
            "[[groups]]\nname = \"g\"\nnodes = [{ name = \"a\", data = \"127.0.0.1:6379\", admin = \"127.0.0.1:16379\" }]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let spec = c.groups[0].spec();
        assert_eq!(spec.driver, Driver::Grpc);
        assert_eq!(spec.nodes[0].admin, "127.0.0.1:16379");
        assert!(spec.auth_pass.is_empty() && spec.rename_commands.is_empty());
    }

    #[test]
    fn a_wrong_group_is_refused_naming_the_key_and_the_group() {
        let node_a = r#"{ name = "a", data = "127.0.0.1:6379" }"#;
        for (i, (group, want)) in [
            // grpc needs admin.
            (format!("nodes = [{node_a}]"), vec!["`admin`", "\"g\"", "\"a\"", "grpc"]),
            (
                format!("driver = \"grpc\"\nnodes = [{node_a}]"),
                vec!["`admin`", "\"g\"", "grpc"],
            ),
            // resp: admin absent or equal to data.
            (
                "driver = \"resp\"\nnodes = [{ name = \"a\", data = \"127.0.0.1:6379\", admin = \"127.0.0.1:16379\" }]".to_string(),
                vec!["`admin`", "\"g\"", "`data`", "resp"],
            ),
            // Unknown driver: the allowed ones named.
            (
                format!("driver = \"redis\"\nnodes = [{node_a}]"),
                vec!["driver", "\"grpc\" or \"resp\"", "\"redis\""],
            ),
            // Credentials and renames are for resp only; a user needs a password.
            (
                "auth_pass = \"p\"\nnodes = [{ name = \"a\", data = \"127.0.0.1:6379\", admin = \"127.0.0.1:16379\" }]".to_string(),
                vec!["\"g\"", "auth_pass", "resp"],
            ),
            (
                format!("driver = \"resp\"\nauth_user = \"u\"\nnodes = [{node_a}]"),
                vec!["\"g\"", "auth_user needs auth_pass"],
            ),
            (
                format!("driver = \"resp\"\nrename_commands = {{ CONFIG = \"A\", config = \"B\" }}\nnodes = [{node_a}]"),
                vec!["\"g\"", "rename_commands", "twice"],
            ),
            (
                format!("driver = \"resp\"\nrename_commands = {{ CONFIG = \"\" }}\nnodes = [{node_a}]"),
                vec!["\"g\"", "rename_commands"],
            ),
            (
                format!("driver = \"resp\"\nbogus = 1\nnodes = [{node_a}]"),
                vec!["bogus"],
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let e = parse(&format!("[[groups]]\nname = \"g\"\n{group}\n"))
                .err()
                .unwrap_or_else(|| panic!("#{i} accepted"));
            for w in want {
                assert!(e.contains(w) && e.contains("s.toml"), "#{i}: {w:?} not in {e}");
            }
        }
    }

    #[test]
    fn groups_alone_parse_as_the_importer_prints_them() {
        let g = parse_groups(
            "[[groups]]\nname = \"g\"\ndriver = \"resp\"\nnodes = [{ name = \"a\", data = \"127.0.0.1:6379\" }]\n",
            "x",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g[0].spec().driver, Driver::Resp);
        let e = parse_groups("[[groups]]\nname = \"g\"\nnodes = []\n", "x").unwrap_err();
        assert!(e.to_string().contains("no nodes"), "{e}");
        assert!(parse_groups("id = 1\n", "x").is_err(), "groups only");
    }
}

mod metrics_key {
    use super::super::*;

    #[test]
    fn metrics_takes_an_address_and_names_itself_when_wrong() {
        let head = "id = 1\ngrpc = \"127.0.0.1:27379\"\ndir = \"d\"\ntoken = \"t\"\npeers = [{ id = 1, address = \"127.0.0.1:27379\" }]\n";
        let ok = SentinelConfig::parse(&format!("{head}metrics = \"127.0.0.1:9122\"\n"), "s.toml")
            .unwrap();
        assert_eq!(ok.metrics, "127.0.0.1:9122");
        let off = SentinelConfig::parse(head, "s.toml").unwrap();
        assert!(off.metrics.is_empty());
        let e = SentinelConfig::parse(&format!("{head}metrics = \"nowhere\"\n"), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`metrics`") && e.contains("s.toml"), "{e}");
    }
}

mod example_file {
    /// The commented example in config/ must always parse.
    #[test]
    fn shipped_example_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/sentinel.toml");
        let c = super::super::SentinelConfig::load(std::path::Path::new(path)).unwrap();
        assert_eq!((c.id, c.peers.len(), c.groups.len()), (1, 3, 1));
        let d = crate::driver::Options::default();
        assert_eq!(
            (c.raft.tick, c.raft.election_ticks),
            (d.tick, d.election_ticks)
        );
    }

    /// The commented-out resp group, uncommented, parses too.
    #[test]
    fn shipped_resp_example_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/sentinel.toml");
        let text = std::fs::read_to_string(path).expect("the example");
        let start = text.find("# [[groups]]").expect("a commented resp group");
        let groups: String = text[start..]
            .lines()
            .map_while(|l| l.strip_prefix("# "))
            .map(|l| format!("{l}\n"))
            .collect();
        let g =
            super::super::parse_groups(&groups, path).unwrap_or_else(|e| panic!("{e}\n{groups}"));
        let spec = g[0].spec();
        assert_eq!(
            (spec.driver, spec.nodes.len()),
            (crate::state::Driver::Resp, 3)
        );
        assert_eq!(spec.command_name("config"), "XCONFIG");
    }
}
