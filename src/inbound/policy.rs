//! The judgement: from what the checks found to accept, Junk, reject or defer, and the
//! score that explains it. Pure: findings in, decision out.
//!
//! Scores are fixed here rather than configurable, so that the header explaining a
//! score means the same on every box; the threshold is `[inbound] junk_score`.

use crate::config::{CheckAction, Inbound};

/// One check's result, in RFC 8601 terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    /// Nothing to check (no record, no signature).
    #[default]
    None,
    TempError,
    PermError,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::SoftFail => "softfail",
            Outcome::Neutral => "neutral",
            Outcome::None => "none",
            Outcome::TempError => "temperror",
            Outcome::PermError => "permerror",
        }
    }
}

/// The policy a DMARC record asks for (after its test mode is taken into account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DmarcPolicy {
    #[default]
    None,
    Quarantine,
    Reject,
}

/// What is wrong with a HELO name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeloProblem {
    /// An address literal that is not the client's address.
    ForeignLiteral,
    /// Neither a literal nor a name with a dot.
    NotQualified,
    /// Our own host name or one of our domains: a forgery.
    OurName,
}

/// Everything the checks found about one message (or, at MAIL, about its client and
/// sender so far).
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub iprev: Outcome,
    pub helo: Option<HeloProblem>,
    /// Block lists listing the client's address.
    pub dnsbl: Vec<String>,
    /// Block lists listing the envelope sender's domain.
    pub rhsbl: Vec<String>,
    pub rate_exceeded: bool,
    pub spf_helo: Outcome,
    pub spf: Outcome,
    /// The envelope sender's domain (for replies).
    pub spf_domain: String,
    /// Every DKIM signature's result.
    pub dkim: Vec<Outcome>,
    pub arc: Outcome,
    /// `d=` of the newest ARC seal, when there is a chain.
    pub arc_sealer: Option<String>,
    /// Whether that sealer recorded `dmarc=pass` in its ARC-Authentication-Results.
    pub arc_sealer_saw_dmarc_pass: bool,
    pub dmarc: Outcome,
    pub dmarc_policy: DmarcPolicy,
    /// Whether the DMARC record was found (its policy is known).
    pub dmarc_record: bool,
    /// The From: domain DMARC judged.
    pub dmarc_domain: String,
}

/// An SMTP refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub esc: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// Deliver into Junk.
    Junk,
}

/// The verdict after DATA.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub decision: Result<Decision, Refusal>,
    pub score: f64,
    /// What added to the score, for the explaining header.
    pub reasons: Vec<(String, f64)>,
}

const SPF_FAIL: f64 = 3.0;
const SPF_SOFTFAIL: f64 = 1.0;
const SPF_HELO_FAIL: f64 = 1.0;
const DKIM_FAIL: f64 = 1.0;
const DMARC_FAIL: f64 = 1.5;
const IPREV_FAIL: f64 = 1.5;
const HELO_ODD: f64 = 1.0;
const HELO_OURS: f64 = 3.0;
const DNSBL_HIT: f64 = 4.0;
const RHSBL_HIT: f64 = 3.0;
const RATE_EXCEEDED: f64 = 2.0;

fn refusal(code: u16, esc: &'static str, text: String) -> Refusal {
    Refusal { code, esc, text }
}

/// The refusals configured for what is known at MAIL: the client and the sender.
pub fn refusal_at_mail(policy: &Inbound, f: &Findings) -> Option<Refusal> {
    let reject = |action: CheckAction| action == CheckAction::Reject;
    if f.rate_exceeded && reject(policy.rate_action) {
        let text = "Too many messages from your address, try again later".into();
        return Some(refusal(450, "4.7.1", text));
    }
    if reject(policy.dnsbl_action) {
        if let Some(zone) = f.dnsbl.first() {
            let text = format!("Client address listed by {zone}");
            return Some(refusal(554, "5.7.1", text));
        }
        if let Some(zone) = f.rhsbl.first() {
            let text = format!("Sender domain listed by {zone}");
            return Some(refusal(554, "5.7.1", text));
        }
    }
    if reject(policy.iprev) && matches!(f.iprev, Outcome::Fail | Outcome::PermError) {
        let text = "Reverse DNS of your address does not confirm it".into();
        return Some(refusal(550, "5.7.25", text));
    }
    if reject(policy.helo) && f.helo.is_some() {
        return Some(refusal(550, "5.7.1", "HELO name refused".into()));
    }
    if reject(policy.spf_fail) && f.spf == Outcome::Fail {
        let text = format!("SPF validation failed for {}", f.spf_domain);
        return Some(refusal(550, "5.7.23", text));
    }
    None
}

/// The verdict on a whole message.
pub fn judge(policy: &Inbound, f: &Findings) -> Judgement {
    let mut reasons: Vec<(String, f64)> = Vec::new();
    let mut add = |why: String, points: f64| reasons.push((why, points));
    let scored = |action: CheckAction| action == CheckAction::Score;
    match f.spf {
        _ if policy.spf_fail == CheckAction::Off => {}
        Outcome::Fail => add("spf=fail".into(), SPF_FAIL),
        Outcome::SoftFail => add("spf=softfail".into(), SPF_SOFTFAIL),
        _ => {}
    }
    if f.spf_helo == Outcome::Fail && policy.spf_fail != CheckAction::Off {
        add("spf-helo=fail".into(), SPF_HELO_FAIL);
    }
    let dkim_pass = f.dkim.contains(&Outcome::Pass);
    if !dkim_pass
        && f.dkim
            .iter()
            .any(|r| matches!(r, Outcome::Fail | Outcome::PermError))
    {
        add("dkim=fail".into(), DKIM_FAIL);
    }
    if scored(policy.iprev) && matches!(f.iprev, Outcome::Fail | Outcome::PermError) {
        add("iprev=fail".into(), IPREV_FAIL);
    }
    if scored(policy.helo) {
        match f.helo {
            Some(HeloProblem::OurName) => add("helo=ours".into(), HELO_OURS),
            Some(HeloProblem::ForeignLiteral) => add("helo=foreign-literal".into(), HELO_ODD),
            Some(HeloProblem::NotQualified) => add("helo=unqualified".into(), HELO_ODD),
            None => {}
        }
    }
    if scored(policy.dnsbl_action) {
        for zone in &f.dnsbl {
            add(format!("dnsbl={zone}"), DNSBL_HIT);
        }
        for zone in &f.rhsbl {
            add(format!("rhsbl={zone}"), RHSBL_HIT);
        }
    }
    if scored(policy.rate_action) && f.rate_exceeded {
        add("rate=exceeded".into(), RATE_EXCEEDED);
    }
    let mut decision = Ok(Decision::Accept);
    if f.dmarc == Outcome::Fail {
        add("dmarc=fail".into(), DMARC_FAIL);
        decision = dmarc_decision(policy, f);
    } else if f.dmarc == Outcome::TempError
        && policy.dmarc_policy
        && (!f.dmarc_record || f.dmarc_policy != DmarcPolicy::None)
    {
        // The policy could not be learnt, or a check that could have aligned failed
        // for now under a policy that matters: RFC 7489 §6.6.3 lets us defer.
        let text = format!(
            "Temporary DNS failure checking DMARC for {}",
            f.dmarc_domain
        );
        decision = Err(refusal(451, "4.4.3", text));
    }
    let score = reasons.iter().fold(0.0, |sum, (_, points)| sum + points);
    if decision == Ok(Decision::Accept) && score >= policy.junk_score {
        decision = Ok(Decision::Junk);
    }
    Judgement {
        decision,
        score,
        reasons,
    }
}

/// A DMARC failure under the published policy, softened by a valid ARC chain.
fn dmarc_decision(policy: &Inbound, f: &Findings) -> Result<Decision, Refusal> {
    if !policy.dmarc_policy {
        return Ok(Decision::Accept);
    }
    // ARC counts only from a sealer we trust, and only if it saw the message pass DMARC
    // before it changed it (RFC 8617 §7.2: an unknown sealer's chain proves nothing, and
    // anyone can seal).
    let trusted = f.arc_sealer.as_deref().is_some_and(|sealer| {
        policy
            .trusted_arc_sealers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(sealer))
    });
    if f.arc == Outcome::Pass && trusted && f.arc_sealer_saw_dmarc_pass {
        return Ok(Decision::Accept);
    }
    match f.dmarc_policy {
        DmarcPolicy::None => Ok(Decision::Accept),
        DmarcPolicy::Quarantine => Ok(Decision::Junk),
        DmarcPolicy::Reject => {
            // A signature or SPF that could not be checked might have aligned: ask again
            // later instead of refusing for good.
            let unsure = f.spf == Outcome::TempError || f.dkim.contains(&Outcome::TempError);
            if unsure {
                let text = format!("Temporary DNS failure checking {}", f.dmarc_domain);
                Err(refusal(451, "4.4.3", text))
            } else {
                let text = format!("Rejected by the DMARC policy of {}", f.dmarc_domain);
                Err(refusal(550, "5.7.1", text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmarc_fail(policy: DmarcPolicy) -> Findings {
        Findings {
            spf: Outcome::Fail,
            spf_domain: "spoofed.test".into(),
            dkim: vec![Outcome::Fail],
            dmarc: Outcome::Fail,
            dmarc_policy: policy,
            dmarc_domain: "spoofed.test".into(),
            ..Findings::default()
        }
    }

    #[test]
    fn dmarc_reject_is_refused_after_data() {
        let j = judge(&Inbound::default(), &dmarc_fail(DmarcPolicy::Reject));
        let r = j.decision.unwrap_err();
        assert_eq!((r.code, r.esc), (550, "5.7.1"));
        assert_eq!(r.text, "Rejected by the DMARC policy of spoofed.test");
        assert_eq!(j.score, SPF_FAIL + DKIM_FAIL + DMARC_FAIL);
    }

    #[test]
    fn dmarc_quarantine_goes_to_junk_and_none_is_only_scored() {
        let policy = Inbound::default();
        let j = judge(&policy, &dmarc_fail(DmarcPolicy::Quarantine));
        assert_eq!(j.decision, Ok(Decision::Junk));
        let j = judge(&policy, &dmarc_fail(DmarcPolicy::None));
        assert_eq!(
            j.decision,
            Ok(Decision::Junk),
            "5.5 points reach junk_score 5"
        );
        let mut f = dmarc_fail(DmarcPolicy::None);
        f.spf = Outcome::SoftFail;
        assert_eq!(judge(&policy, &f).decision, Ok(Decision::Accept));
    }

    #[test]
    fn a_temporary_failure_that_could_have_aligned_defers() {
        let mut f = dmarc_fail(DmarcPolicy::Reject);
        f.dkim = vec![Outcome::TempError];
        let r = judge(&Inbound::default(), &f).decision.unwrap_err();
        assert_eq!((r.code, r.esc), (451, "4.4.3"));
        f.dmarc = Outcome::TempError;
        let r = judge(&Inbound::default(), &f).decision.unwrap_err();
        assert_eq!(r.code, 451, "no record could be fetched");
        f.dmarc_record = true;
        f.dmarc_policy = DmarcPolicy::None;
        assert_eq!(
            judge(&Inbound::default(), &f).decision,
            Ok(Decision::Accept)
        );
    }

    #[test]
    fn arc_softens_or_overrides_a_dmarc_failure() {
        let mut policy = Inbound::default();
        let mut f = dmarc_fail(DmarcPolicy::Reject);
        f.spf = Outcome::Pass;
        f.arc = Outcome::Pass;
        f.arc_sealer = Some("Lists.Example".into());
        f.arc_sealer_saw_dmarc_pass = true;
        let refused = |policy: &Inbound, f: &Findings| judge(policy, f).decision.unwrap_err().code;
        assert_eq!(
            refused(&policy, &f),
            550,
            "an unknown sealer proves nothing"
        );
        policy.trusted_arc_sealers = vec!["lists.example".into()];
        assert_eq!(judge(&policy, &f).decision, Ok(Decision::Accept));
        f.arc_sealer_saw_dmarc_pass = false;
        assert_eq!(
            refused(&policy, &f),
            550,
            "the sealer did not see DMARC pass"
        );
        f.arc_sealer_saw_dmarc_pass = true;
        f.arc = Outcome::Fail;
        assert_eq!(refused(&policy, &f), 550);
    }

    #[test]
    fn spf_off_does_not_score() {
        let policy = Inbound {
            spf_fail: CheckAction::Off,
            ..Inbound::default()
        };
        let f = Findings {
            spf: Outcome::Fail,
            spf_helo: Outcome::Fail,
            ..Findings::default()
        };
        assert_eq!(judge(&policy, &f).score, 0.0);
    }

    #[test]
    fn dmarc_policy_off_only_scores() {
        let policy = Inbound {
            dmarc_policy: false,
            ..Inbound::default()
        };
        let j = judge(&policy, &dmarc_fail(DmarcPolicy::Reject));
        assert_eq!(j.decision, Ok(Decision::Junk));
    }

    #[test]
    fn configured_rejections_at_mail() {
        let mut policy = Inbound::default();
        let f = Findings {
            spf: Outcome::Fail,
            spf_domain: "spoofed.test".into(),
            dnsbl: vec!["bl.test".into()],
            ..Findings::default()
        };
        assert_eq!(refusal_at_mail(&policy, &f), None, "scores by default");
        policy.spf_fail = CheckAction::Reject;
        let r = refusal_at_mail(&policy, &f).unwrap();
        assert_eq!((r.code, r.esc), (550, "5.7.23"));
        policy.dnsbl_action = CheckAction::Reject;
        let r = refusal_at_mail(&policy, &f).unwrap();
        assert_eq!(
            (r.code, r.text.as_str()),
            (554, "Client address listed by bl.test")
        );
        let rated = Findings {
            rate_exceeded: true,
            ..Findings::default()
        };
        let r = refusal_at_mail(&policy, &rated).unwrap();
        assert_eq!((r.code, r.esc), (450, "4.7.1"));
    }

    #[test]
    fn reputation_scores_add_up_to_junk() {
        let f = Findings {
            iprev: Outcome::Fail,
            helo: Some(HeloProblem::NotQualified),
            dnsbl: vec!["bl.test".into()],
            ..Findings::default()
        };
        let j = judge(&Inbound::default(), &f);
        assert_eq!(j.score, IPREV_FAIL + HELO_ODD + DNSBL_HIT);
        assert_eq!(j.decision, Ok(Decision::Junk));
        let names: Vec<&str> = j.reasons.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["iprev=fail", "helo=unqualified", "dnsbl=bl.test"]);
    }
}
