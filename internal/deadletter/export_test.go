package deadletter

// MaxErrorLen is the bound of the error header, for the tests.
const MaxErrorLen = maxErrorLen
