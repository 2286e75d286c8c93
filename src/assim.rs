//! The Avellaneda-Stoikov (2008) Monte Carlo: the paper's own simulation of the
//! inventory strategy against the symmetric one.
