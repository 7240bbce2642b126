//! The order layers run in: every layer after the layers it requires, the
//! image's own order breaking ties.

use super::ComposeError;
use crate::model::{Distro, Layer};

/// Returns indices into `layers` (the image's order) in execution order.
pub fn order(image: &str, distro: Distro, layers: &[&Layer]) -> Result<Vec<usize>, ComposeError> {
    let index = |name: &str| layers.iter().position(|l| l.name == name);

    for layer in layers {
        if !layer.distros.contains(&distro) {
            return Err(ComposeError::UnsupportedDistro {
                layer: layer.name.clone(),
                distro,
                supported: layer.distros.clone(),
                image: image.to_string(),
            });
        }
        for other in &layer.conflicts {
            if index(other).is_some() {
                return Err(ComposeError::Conflict {
                    layer: layer.name.clone(),
                    other: other.clone(),
                });
            }
        }
    }

    // deps[i]: the indices layer i requires.
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(layers.len());
    for layer in layers {
        let mut d = Vec::with_capacity(layer.requires.len());
        for r in &layer.requires {
            match index(r) {
                Some(j) => d.push(j),
                None => {
                    return Err(ComposeError::RequiresMissing {
                        layer: layer.name.clone(),
                        requires: r.clone(),
                        image: image.to_string(),
                    })
                }
            }
        }
        deps.push(d);
    }

    // Depth first in the image's order: each layer is placed right after
    // the layers it requires, so the order the user wrote is kept wherever
    // the graph allows it.
    let n = layers.len();
    let mut state = vec![Mark::New; n];
    let mut out = Vec::with_capacity(n);
    let mut stack = Vec::new();
    for i in 0..n {
        visit(i, &deps, &mut state, &mut stack, &mut out).map_err(|cycle| ComposeError::Cycle {
            path: cycle.into_iter().map(|j| layers[j].name.clone()).collect(),
        })?;
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    New,
    /// On the current path: meeting it again closes a cycle.
    Visiting,
    Placed,
}

/// Places `i` after its requirements; on a cycle returns its path, first
/// layer repeated at the end.
fn visit(
    i: usize,
    deps: &[Vec<usize>],
    state: &mut [Mark],
    stack: &mut Vec<usize>,
    out: &mut Vec<usize>,
) -> Result<(), Vec<usize>> {
    match state[i] {
        Mark::Placed => return Ok(()),
        Mark::Visiting => {
            let from = stack.iter().position(|&s| s == i).unwrap_or(0);
            let mut cycle = stack[from..].to_vec();
            cycle.push(i);
            return Err(cycle);
        }
        Mark::New => {}
    }
    state[i] = Mark::Visiting;
    stack.push(i);
    for &d in &deps[i] {
        visit(d, deps, state, stack, out)?;
    }
    stack.pop();
    state[i] = Mark::Placed;
    out.push(i);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, requires: &[&str]) -> Layer {
        let yaml = format!(
            "schema: 1\nname: {name}\nversion: '1'\ndescription: d\ndistros: [debian-12]\nrequires: [{}]\n",
            requires.join(", ")
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn names(layers: &[Layer]) -> Result<Vec<String>, ComposeError> {
        let refs: Vec<&Layer> = layers.iter().collect();
        order("img", Distro::Debian12, &refs)
            .map(|o| o.into_iter().map(|i| layers[i].name.clone()).collect())
    }

    #[test]
    fn requirements_first_image_order_otherwise() {
        let layers = [
            layer("jitsi", &["base", "nginx"]),
            layer("monitoring", &["base"]),
            layer("nginx", &["base"]),
            layer("base", &[]),
        ];
        assert_eq!(
            names(&layers).unwrap(),
            ["base", "nginx", "jitsi", "monitoring"]
        );
        let layers = [
            layer("base", &[]),
            layer("monitoring", &["base"]),
            layer("nginx", &["base"]),
        ];
        assert_eq!(names(&layers).unwrap(), ["base", "monitoring", "nginx"]);
    }

    #[test]
    fn cycles_print_their_path() {
        let layers = [
            layer("base", &[]),
            layer("a", &["b"]),
            layer("b", &["c"]),
            layer("c", &["a"]),
        ];
        let err = names(&layers).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layers require each other in a cycle: a -> b -> c -> a"
        );
    }

    #[test]
    fn self_requirement_is_a_cycle() {
        let err = names(&[layer("a", &["a"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layers require each other in a cycle: a -> a"
        );
    }

    #[test]
    fn missing_requirement_names_layer_and_image() {
        let err = names(&[layer("jitsi", &["nginx"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer `jitsi` requires layer `nginx`, which image `img` does not list: add it to the image's `layers`"
        );
    }

    #[test]
    fn declared_conflicts_are_errors() {
        let mut apache = layer("apache", &[]);
        apache.conflicts = vec!["nginx".into()];
        let err = names(&[apache, layer("nginx", &[])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer `apache` conflicts with layer `nginx`: an image cannot have both"
        );
    }

    #[test]
    fn unsupported_distro_lists_what_is_supported() {
        let layers = [layer("x", &[])];
        let refs: Vec<&Layer> = layers.iter().collect();
        let err = order("img", Distro::Ubuntu2404, &refs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer `x` does not support ubuntu-24.04 (it supports debian-12); image `img` is ubuntu-24.04"
        );
    }
}
