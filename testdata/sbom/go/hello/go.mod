module example.com/hello

go 1.19

require example.com/greet v1.2.3

// The dependency is a local directory: the test builds offline. The build info still names the required
// module path and version, as it would for one from a proxy.
replace example.com/greet => ../greet
