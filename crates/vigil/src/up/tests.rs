//! `vigil up`'s configuration: the built-in file, bad files, nodes per shard.

/// The built-in configuration (the commented example in config/) always loads, runs
/// synchronous replication and keeps its data outside the working directory.
#[test]
fn builtin_config_loads() {
    let c = super::LocalCluster::builtin().unwrap();
    assert_eq!(
        (
            c.base_port,
            c.grpc_base_port,
            c.group.as_str(),
            c.sync_replicas
        ),
        (6379, 27379, "mymaster", 1)
    );
    assert_eq!(c.dir, super::default_dir());
    assert_eq!(c.raft_tick(), std::time::Duration::from_millis(50));
    // One event loop per node, as redis-server: the nodes share the machine.
    assert_eq!(c.node_threads, 1);
    let text = format!("{}\nnode_threads = 0\n", super::DEFAULT_CONFIG);
    let c = super::LocalCluster::parse(&text, "f.toml").unwrap();
    assert_eq!(c.node_threads, 0);
}

#[test]
fn bad_configs_name_the_problem() {
    let e = super::LocalCluster::parse("base_port = 1", "f.toml").unwrap_err();
    assert!(e.to_string().contains("invalid config in f.toml"), "{e}");
    let text = super::DEFAULT_CONFIG.replace("down_after = \"1s\"", "down_after = \"soon\"");
    let e = super::LocalCluster::parse(&text, "f.toml").unwrap_err();
    assert!(format!("{e:#}").contains("`down_after`"), "{e:#}");
    let text = format!(
        "{}\nshards = 3\nshard_replicas = 0\n",
        super::DEFAULT_CONFIG
    );
    let e = super::LocalCluster::parse(&text, "f.toml").unwrap_err();
    assert!(
        format!("{e:#}").contains("cannot exceed `shard_replicas`"),
        "{e:#}"
    );
}

/// Shards have a master and `shard_replicas` replicas each (two by default); one group has
/// three nodes whatever `shard_replicas` says.
#[test]
fn nodes_per_shard() {
    let parse = |extra: &str| {
        let text = format!("{}\n{extra}\n", super::DEFAULT_CONFIG);
        super::LocalCluster::parse(&text, "f.toml").unwrap()
    };
    let c = parse("shards = 3");
    assert_eq!((c.per_group(), c.node_count()), (3, 9));
    let c = parse("shards = 3\nshard_replicas = 1");
    assert_eq!((c.per_group(), c.node_count()), (2, 6));
    assert_eq!(c.groups()[2], ("shard3".to_string(), 4));
    let c = parse("shard_replicas = 1");
    assert_eq!((c.per_group(), c.node_count()), (3, 3));
}
