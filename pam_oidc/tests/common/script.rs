//! A scripted helperd: the calls a hook is expected to make, in order, each
//! with its answer. An unexpected call fails the test at once; an expected
//! call that never came fails it when the script is dropped (kanidm's
//! `TestHandler` is the model).

use oidc_core::Config;
use oidc_core::{Client, Helper, IpcError, Request, Response};
use pam_oidc::edges::Edges;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

type Answer = Box<dyn FnOnce(&Request) -> Result<Response, IpcError>>;

#[derive(Default)]
pub struct Script {
    steps: RefCell<VecDeque<(&'static str, Answer)>>,
    /// Every call made: the request's name and the deadline it was given.
    pub calls: RefCell<Vec<(&'static str, Option<Duration>)>>,
}

impl Script {
    pub fn new() -> Rc<Script> {
        Rc::new(Script::default())
    }

    /// Expect a request named `op` next (see `Request::name`); `answer`
    /// checks it and answers.
    pub fn expect(
        self: &Rc<Self>,
        op: &'static str,
        answer: impl FnOnce(&Request) -> Result<Response, IpcError> + 'static,
    ) -> Rc<Self> {
        self.steps.borrow_mut().push_back((op, Box::new(answer)));
        Rc::clone(self)
    }

    fn next(&self, req: &Request, timeout: Option<Duration>) -> Result<Response, IpcError> {
        self.calls.borrow_mut().push((req.name(), timeout));
        let Some((op, answer)) = self.steps.borrow_mut().pop_front() else {
            panic!("unexpected helperd call {} (the script has ended)", req.name());
        };
        assert_eq!(req.name(), op, "helperd call out of script order");
        answer(req)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.calls.borrow().iter().map(|c| c.0).collect()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let left: Vec<_> = self.steps.borrow().iter().map(|s| s.0).collect();
        if !std::thread::panicking() {
            assert!(left.is_empty(), "expected helperd calls never made: {left:?}");
        }
    }
}

struct Handle(Rc<Script>);

impl Helper for Handle {
    fn call(&self, req: &Request) -> Result<Response, IpcError> {
        self.0.next(req, None)
    }
    fn call_within(&self, req: &Request, timeout: Duration) -> Result<Response, IpcError> {
        self.0.next(req, Some(timeout))
    }
}

/// A fixed clock, host name and pid; helperd is the script, or — with no
/// script — the real client on the config's socket (where nothing listens:
/// helperd is down). The caller's real uid is a user's (1000, as in sudo)
/// unless a test sets it (0: sshd, login).
pub struct TestEdges {
    pub now: i64,
    pub script: Option<Rc<Script>>,
    pub caller_uid: u32,
}

impl TestEdges {
    pub fn down(now: i64) -> TestEdges {
        TestEdges { now, script: None, caller_uid: 1000 }
    }
    pub fn with(now: i64, script: &Rc<Script>) -> TestEdges {
        TestEdges { now, script: Some(Rc::clone(script)), caller_uid: 1000 }
    }
    /// The host process runs as root (sshd's monitor, login).
    pub fn root_caller(self) -> TestEdges {
        TestEdges { caller_uid: 0, ..self }
    }
}

impl Edges for TestEdges {
    fn now(&self) -> i64 {
        self.now
    }
    fn helper(&self, cfg: &Config) -> Box<dyn Helper + '_> {
        match &self.script {
            Some(s) => Box::new(Handle(Rc::clone(s))),
            None => Box::new(Client::for_caller(&cfg.helperd, Duration::from_millis(200))),
        }
    }
    fn hostname(&self) -> String {
        "bastion-1".into()
    }
    fn pid(&self) -> i32 {
        4242
    }
    fn real_uid(&self) -> u32 {
        self.caller_uid
    }
}
