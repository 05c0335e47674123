//! Both backends' migration folders carry the same versions: a schema change made for
//! one backend and forgotten for the other fails here, not in production.

#[test]
fn both_backends_have_the_same_migration_versions() {
    let versions = |m: &[(i64, &str)]| m.iter().map(|(v, _)| *v).collect::<Vec<_>>();
    let sqlite = versions(opsd_store_sqlite::MIGRATIONS);
    let postgres = versions(opsd_store_postgres::MIGRATIONS);
    assert_eq!(
        sqlite, postgres,
        "crates/store-sqlite/migrations and crates/store-postgres/migrations differ"
    );
    assert!(
        sqlite.windows(2).all(|w| w[0] < w[1]),
        "{sqlite:?} in order"
    );
}

#[test]
fn migration_files_on_disk_are_all_embedded() {
    for (dir, embedded) in [
        ("../store-sqlite/migrations", opsd_store_sqlite::MIGRATIONS),
        (
            "../store-postgres/migrations",
            opsd_store_postgres::MIGRATIONS,
        ),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let on_disk = std::fs::read_dir(&path)
            .expect("migrations folder")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count();
        assert_eq!(
            on_disk,
            embedded.len(),
            "{} vs the embedded list",
            path.display()
        );
    }
}
