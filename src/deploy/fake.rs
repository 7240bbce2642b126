//! An in-memory Neutron for unit tests of what deploy does over
//! [`NetworkService`]: just enough of Neutron's behaviour (tag filters,
//! duplicate rules refused with 409, a group in use refused with 409) to
//! test the paths a real Neutron cannot be made to take on demand: a
//! create whose answer is lost, a tag request that fails, an association
//! that shows late. The integration tests run the same code against the
//! playground's real Neutron.

use crate::cloud::network::{
    Direction, Ethertype, FixedIp, FloatingIp, Network, NetworkService, NewFloatingIp,
    NewSecurityGroup, NewSecurityGroupRule, Port, SecurityGroup, SecurityGroupRule, Tagged,
};
use crate::cloud::CloudError;
use crate::deploy::secgroup::Rule;
use std::cell::{Cell, RefCell};

#[derive(Default)]
pub struct FakeNeutron {
    networks: RefCell<Vec<Network>>,
    ports: RefCell<Vec<Port>>,
    groups: RefCell<Vec<SecurityGroup>>,
    fips: RefCell<Vec<FloatingIp>>,
    next: Cell<u32>,
    writes: Cell<usize>,
    /// The next create succeeds but answers with a broken connection.
    lose_create: Cell<bool>,
    fail_tags: Cell<bool>,
    /// Reads of a floating IP that will still show its old port after the
    /// next move, and those left after the last one.
    stale_after_move: Cell<u32>,
    stale_reads: Cell<u32>,
    stale_port: RefCell<Option<String>>,
    /// What `quotas` answers (`None`: the cloud does not say).
    pub quotas: Cell<Option<crate::cloud::network::NetworkQuotas>>,
}

fn transport(what: &str) -> CloudError {
    CloudError::Transport {
        service: "neutron",
        method: "POST".into(),
        url: format!("http://fake/v2.0/{what}"),
        message: "connection reset".into(),
    }
}

fn http(status: u16, method: &str, what: &str, message: &str) -> CloudError {
    CloudError::Http {
        service: "neutron",
        method: method.into(),
        url: format!("http://fake/v2.0/{what}"),
        status,
        message: message.into(),
    }
}

/// Neutron's `tags=a,b` (all of them) and exact matches on other keys.
fn matches(
    filters: &[(&str, &str)],
    tags: &[String],
    field: impl Fn(&str) -> Option<String>,
) -> bool {
    filters.iter().all(|(k, v)| match *k {
        "tags" => v.split(',').all(|t| tags.iter().any(|have| have == t)),
        _ => field(k).as_deref() == Some(*v),
    })
}

impl FakeNeutron {
    fn id(&self, prefix: &str) -> String {
        let n = self.next.get() + 1;
        self.next.set(n);
        format!("{prefix}{n}")
    }

    fn wrote(&self) {
        self.writes.set(self.writes.get() + 1);
    }

    /// Creates, rule changes, tags, associations and deletes so far.
    pub fn calls_that_write(&self) -> usize {
        self.writes.get()
    }

    pub fn lose_next_create(&self) {
        self.lose_create.set(true);
    }

    pub fn fail_tags(&self, fail: bool) {
        self.fail_tags.set(fail);
    }

    /// After the next association, this many reads still show the old port.
    pub fn stale_reads(&self, n: u32) {
        self.stale_after_move.set(n);
    }

    /// Whether to answer this create with a lost answer (after making it).
    fn lost(&self) -> bool {
        self.lose_create.replace(false)
    }

    pub fn groups(&self) -> Vec<SecurityGroup> {
        self.groups.borrow().clone()
    }

    pub fn fips(&self) -> Vec<FloatingIp> {
        self.fips.borrow().clone()
    }

    pub fn add_network(&self, id: &str, name: &str, external: bool) {
        self.networks.borrow_mut().push(Network {
            id: id.into(),
            name: name.into(),
            status: "ACTIVE".into(),
            external,
            shared: false,
            subnets: vec![],
            tags: vec![],
        });
    }

    pub fn add_port(&self, id: &str, network: &str, device: &str, ips: &[&str], groups: &[&str]) {
        self.ports.borrow_mut().push(Port {
            id: id.into(),
            name: String::new(),
            network_id: network.into(),
            device_id: device.into(),
            device_owner: "compute:nova".into(),
            status: "ACTIVE".into(),
            mac_address: String::new(),
            fixed_ips: ips
                .iter()
                .map(|ip| FixedIp {
                    subnet_id: format!("{network}-subnet"),
                    ip_address: ip.to_string(),
                })
                .collect(),
            security_groups: groups.iter().map(|g| g.to_string()).collect(),
            tags: vec![],
        });
    }

    pub fn remove_port(&self, id: &str) {
        self.ports.borrow_mut().retain(|p| p.id != id);
    }
}

impl NetworkService for FakeNeutron {
    async fn networks(&self, filters: &[(&str, &str)]) -> Result<Vec<Network>, CloudError> {
        Ok(self
            .networks
            .borrow()
            .iter()
            .filter(|n| {
                matches(filters, &n.tags, |k| match k {
                    "name" => Some(n.name.clone()),
                    "id" => Some(n.id.clone()),
                    "router:external" => Some(n.external.to_string()),
                    _ => None,
                })
            })
            .cloned()
            .collect())
    }

    async fn ports(&self, filters: &[(&str, &str)]) -> Result<Vec<Port>, CloudError> {
        Ok(self
            .ports
            .borrow()
            .iter()
            .filter(|p| {
                filters.iter().all(|(k, v)| match *k {
                    "security_groups" => p.security_groups.iter().any(|g| g == v),
                    "device_id" => p.device_id == *v,
                    "network_id" => p.network_id == *v,
                    "id" => p.id == *v,
                    _ => false,
                })
            })
            .cloned()
            .collect())
    }

    async fn security_groups(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroup>, CloudError> {
        Ok(self
            .groups
            .borrow()
            .iter()
            .filter(|g| {
                matches(filters, &g.tags, |k| match k {
                    "name" => Some(g.name.clone()),
                    "id" => Some(g.id.clone()),
                    _ => None,
                })
            })
            .cloned()
            .collect())
    }

    async fn create_security_group(
        &self,
        group: &NewSecurityGroup,
    ) -> Result<SecurityGroup, CloudError> {
        self.wrote();
        let id = self.id("sg");
        let egress = |e: Ethertype| SecurityGroupRule {
            id: self.id("r"),
            security_group_id: id.clone(),
            direction: Direction::Egress,
            ethertype: e,
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: None,
            remote_address_group_id: None,
            description: String::new(),
        };
        let g = SecurityGroup {
            id: id.clone(),
            name: group.name.clone(),
            description: group.description.clone(),
            tags: vec![],
            rules: vec![egress(Ethertype::Ipv4), egress(Ethertype::Ipv6)],
            project_id: Some("p".into()),
        };
        self.groups.borrow_mut().push(g.clone());
        if self.lost() {
            return Err(transport("security-groups"));
        }
        Ok(g)
    }

    async fn delete_security_group(&self, id: &str) -> Result<bool, CloudError> {
        if self
            .ports
            .borrow()
            .iter()
            .any(|p| p.security_groups.iter().any(|g| g == id))
        {
            return Err(http(
                409,
                "DELETE",
                &format!("security-groups/{id}"),
                &format!("Security Group {id} in use."),
            ));
        }
        self.wrote();
        let mut groups = self.groups.borrow_mut();
        let before = groups.len();
        groups.retain(|g| g.id != id);
        Ok(groups.len() < before)
    }

    async fn security_group_rules(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroupRule>, CloudError> {
        Ok(self
            .groups
            .borrow()
            .iter()
            .flat_map(|g| g.rules.clone())
            .filter(|r| {
                matches(filters, &[], |k| match k {
                    "security_group_id" => Some(r.security_group_id.clone()),
                    _ => None,
                })
            })
            .collect())
    }

    async fn create_security_group_rule(
        &self,
        rule: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule, CloudError> {
        let made = SecurityGroupRule {
            id: self.id("r"),
            security_group_id: rule.security_group_id.clone(),
            direction: rule.direction,
            ethertype: rule.ethertype,
            protocol: rule.protocol.clone(),
            port_range_min: rule.port_range_min,
            port_range_max: rule.port_range_max,
            remote_ip_prefix: rule.remote_ip_prefix.clone(),
            remote_group_id: None,
            remote_address_group_id: None,
            description: rule.description.clone().unwrap_or_default(),
        };
        let mut groups = self.groups.borrow_mut();
        let g = groups
            .iter_mut()
            .find(|g| g.id == rule.security_group_id)
            .ok_or_else(|| {
                http(
                    404,
                    "POST",
                    "security-group-rules",
                    "Security group not found",
                )
            })?;
        let same = Rule::from_neutron(&made);
        if let Some(r) = g.rules.iter().find(|r| Rule::from_neutron(r) == same) {
            return Err(http(
                409,
                "POST",
                "security-group-rules",
                &format!("Security group rule already exists. Rule id is {}.", r.id),
            ));
        }
        self.wrote();
        g.rules.push(made.clone());
        Ok(made)
    }

    async fn delete_security_group_rule(&self, id: &str) -> Result<bool, CloudError> {
        self.wrote();
        let mut found = false;
        for g in self.groups.borrow_mut().iter_mut() {
            let before = g.rules.len();
            g.rules.retain(|r| r.id != id);
            found |= g.rules.len() < before;
        }
        Ok(found)
    }

    async fn floating_ips(&self, filters: &[(&str, &str)]) -> Result<Vec<FloatingIp>, CloudError> {
        let stale = if self.stale_reads.get() > 0 {
            self.stale_reads.set(self.stale_reads.get() - 1);
            self.stale_port.borrow().clone()
        } else {
            None
        };
        Ok(self
            .fips
            .borrow()
            .iter()
            .filter(|f| {
                matches(filters, &f.tags, |k| match k {
                    "id" => Some(f.id.clone()),
                    "description" => Some(f.description.clone()),
                    "floating_network_id" => Some(f.floating_network_id.clone()),
                    "port_id" => f.port_id.clone(),
                    _ => None,
                })
            })
            .cloned()
            .map(|mut f| {
                if let Some(old) = &stale {
                    f.port_id = Some(old.clone()).filter(|p| !p.is_empty());
                }
                f
            })
            .collect())
    }

    async fn create_floating_ip(&self, ip: &NewFloatingIp) -> Result<FloatingIp, CloudError> {
        self.wrote();
        let n = self.fips.borrow().len() + 10;
        let f = FloatingIp {
            id: self.id("fip"),
            floating_ip_address: format!("203.0.113.{n}"),
            floating_network_id: ip.network_id.clone(),
            port_id: ip.port_id.clone(),
            fixed_ip_address: None,
            status: "DOWN".into(),
            description: ip.description.clone().unwrap_or_default(),
            tags: vec![],
        };
        self.fips.borrow_mut().push(f.clone());
        if self.lost() {
            return Err(transport("floatingips"));
        }
        Ok(f)
    }

    async fn associate_floating_ip(
        &self,
        id: &str,
        port_id: &str,
    ) -> Result<FloatingIp, CloudError> {
        self.wrote();
        let mut fips = self.fips.borrow_mut();
        let f = fips
            .iter_mut()
            .find(|f| f.id == id)
            .ok_or_else(|| http(404, "PUT", "floatingips", "Floating IP not found"))?;
        *self.stale_port.borrow_mut() = Some(f.port_id.clone().unwrap_or_default());
        self.stale_reads.set(self.stale_after_move.replace(0));
        f.port_id = Some(port_id.into());
        Ok(f.clone())
    }

    async fn disassociate_floating_ip(&self, id: &str) -> Result<FloatingIp, CloudError> {
        self.wrote();
        let mut fips = self.fips.borrow_mut();
        let f = fips
            .iter_mut()
            .find(|f| f.id == id)
            .ok_or_else(|| http(404, "PUT", "floatingips", "Floating IP not found"))?;
        f.port_id = None;
        Ok(f.clone())
    }

    async fn delete_floating_ip(&self, id: &str) -> Result<bool, CloudError> {
        self.wrote();
        let mut fips = self.fips.borrow_mut();
        let before = fips.len();
        fips.retain(|f| f.id != id);
        Ok(fips.len() < before)
    }

    async fn quotas(&self) -> Result<Option<crate::cloud::network::NetworkQuotas>, CloudError> {
        Ok(self.quotas.get())
    }

    async fn add_tag(&self, resource: Tagged, id: &str, tag: &str) -> Result<(), CloudError> {
        if self.fail_tags.get() {
            return Err(http(503, "PUT", "tags", "Service Unavailable"));
        }
        self.wrote();
        let add = |tags: &mut Vec<String>| {
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.into());
            }
        };
        match resource {
            Tagged::SecurityGroup => self
                .groups
                .borrow_mut()
                .iter_mut()
                .filter(|g| g.id == id)
                .for_each(|g| add(&mut g.tags)),
            Tagged::FloatingIp => self
                .fips
                .borrow_mut()
                .iter_mut()
                .filter(|f| f.id == id)
                .for_each(|f| add(&mut f.tags)),
            _ => {}
        }
        Ok(())
    }

    async fn remove_tag(&self, _resource: Tagged, _id: &str, _tag: &str) -> Result<(), CloudError> {
        self.wrote();
        Ok(())
    }
}
