// bundle-validate checks an OLM bundle directory with the validators of
// github.com/operator-framework/api: the default bundle validators (CSV, CRDs, bundle) plus
// OperatorHub (v2), standard capabilities, standard categories and good practices, for the
// Kubernetes version given with -k8s-version. It prints every error and warning and exits 1 when
// there is any error (the module's own operator-verify exits 0 even then).
//
// Usage: bundle-validate [-k8s-version 1.36] BUNDLE_DIR
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
)

func main() {
	k8sVersion := flag.String("k8s-version", "1.36", "Kubernetes version the bundle targets")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: bundle-validate [-k8s-version X.Y] BUNDLE_DIR")
		os.Exit(2)
	}
	bundle, err := manifests.GetBundleFromDir(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: cannot load the bundle in %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	validators := validation.DefaultBundleValidators.WithValidators(
		validation.OperatorHubV2Validator,
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.GoodPracticesValidator,
	)
	objects := append(bundle.ObjectsToValidate(), map[string]string{"k8s-version": *k8sVersion})
	errorCount, warningCount := 0, 0
	for _, result := range validators.Validate(objects...) {
		for _, e := range result.Errors {
			errorCount++
			fmt.Printf("ERROR %s: %s\n", result.Name, e.Error())
		}
		for _, w := range result.Warnings {
			warningCount++
			fmt.Printf("WARNING %s: %s\n", result.Name, w.Error())
		}
	}
	fmt.Printf("bundle %s (%s): %d errors, %d warnings (k8s-version %s)\n",
		flag.Arg(0), bundle.Name, errorCount, warningCount, *k8sVersion)
	if errorCount > 0 {
		os.Exit(1)
	}
}
