//! A plugin built for a contract this host does not know
//! (`flowhost:plugin@9.0.0`): loading it must fail with a message that
//! names the versions the host supports.

wit_bindgen::generate!({
    inline: r#"
        package flowhost:plugin@9.0.0;

        interface action-plugin {
            describe: func() -> string;
        }

        world action {
            export action-plugin;
        }
    "#,
    world: "action",
});

struct Future;

impl exports::flowhost::plugin::action_plugin::Guest for Future {
    fn describe() -> String {
        "from the future".into()
    }
}

export!(Future);
