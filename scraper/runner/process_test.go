package runner

const childEnv = "USAGE_RUNNER_TEST_CHILD"

func childMain() int { return 0 }
