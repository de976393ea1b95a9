//! What a loaded stack wants, in the reconciler's terms.

use super::plan::{Desired, DesiredService};
use crate::stack::{config::service_hash, Loaded};

/// The desired state of a loaded stack, services in start order. `image_digest` gives the
/// digest each service's image resolves to now (None when not known yet).
pub fn desired(loaded: &Loaded, image_digest: &dyn Fn(&str) -> Option<String>) -> Desired {
    let project = &loaded.project;
    let mut services = indexmap::IndexMap::new();
    for name in loaded.graph.start_order() {
        let svc = &project.services[name];
        let replicas = svc
            .deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .or(svc.scale)
            .unwrap_or(1) as u32;
        let restart_with = svc
            .depends_on
            .iter()
            .filter(|(_, d)| d.restart)
            .map(|(n, _)| n.clone())
            .collect();
        services.insert(
            name.to_string(),
            DesiredService {
                config_hash: service_hash(loaded, name).expect("the service exists"),
                // A built service without `image:` runs `PROJECT-SERVICE` (see cli/build.rs).
                image_digest: svc
                    .image
                    .clone()
                    .or_else(|| {
                        svc.build
                            .as_ref()
                            .map(|_| format!("{}-{name}", loaded.name))
                    })
                    .as_deref()
                    .and_then(image_digest),
                replicas,
                restart_with,
            },
        );
    }
    let used_networks: std::collections::HashSet<&String> = project
        .services
        .values()
        .flat_map(|s| s.networks.keys())
        .collect();
    let networks = project
        .networks
        .iter()
        .filter(|(k, n)| used_networks.contains(k) && n.external != Some(true))
        .filter_map(|(_, n)| n.name.clone())
        .collect();
    let volumes = project
        .volumes
        .values()
        .filter(|v| v.external != Some(true))
        .filter_map(|v| v.name.clone())
        .collect();
    let disabled = loaded
        .all_services
        .iter()
        .filter(|s| !project.services.contains_key(s.as_str()))
        .cloned()
        .collect();
    Desired {
        project: loaded.name.clone(),
        services,
        networks,
        volumes,
        disabled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{load, Options};

    #[test]
    fn services_in_start_order_with_replicas_and_restart_dependencies() {
        let text = "services:\n  web:\n    image: nginx\n    deploy: {replicas: 3}\n    depends_on:\n      db: {condition: service_healthy, restart: true}\n  db:\n    image: postgres\n    volumes: ['data:/d']\n  ext:\n    image: x\n    networks: [outside]\nvolumes:\n  data:\nnetworks:\n  outside: {external: true}\n";
        let loaded = load(&Options {
            files: vec!["-".into()],
            stdin: Some(text.into()),
            project_name: Some("p".into()),
            environment: Some(Default::default()),
            ..Options::default()
        })
        .unwrap();
        let d = desired(&loaded, &|image| Some(format!("sha256:{image}")));
        let names: Vec<&str> = d.services.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["db", "web", "ext"]);
        assert_eq!(d.services["web"].replicas, 3);
        assert_eq!(d.services["web"].restart_with, vec!["db".to_string()]);
        assert_eq!(
            d.services["db"].image_digest.as_deref(),
            Some("sha256:postgres")
        );
        assert_eq!(d.networks, vec!["p_default".to_string()]);
        assert_eq!(d.volumes, vec!["p_data".to_string()]);
    }
}
