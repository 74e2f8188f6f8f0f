# `gib plan --json` -> a GitLab child pipeline (JSON, which is YAML too): one job per
# image, `needs:` its parents of the same file, and the gib binary from the parent pipeline's
# plan job. Used by examples/ci/gitlab-ci.yml: jq -f ci/gitlab-images.jq plan.json
def job_name: "image:" + .;
{
  stages: ["images"],
  default: {tags: ["gib"]}
}
+ (
  [
    .images[]
    | {
        key: (.name | job_name),
        value: {
          stage: "images",
          variables: {IMAGE: .name},
          needs: (
            [{pipeline: "$PARENT_PIPELINE_ID", job: "plan"}]
            + [.depends_on[] | {job: job_name, artifacts: false}]
          ),
          before_script: [
            "mkdir -p ~/.docker",
            "printf '{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}' \"$CI_REGISTRY\" \"$(printf '%s:%s' \"$CI_REGISTRY_USER\" \"$CI_REGISTRY_PASSWORD\" | base64 -w0)\" > ~/.docker/config.json"
          ],
          script: [
            ".gib/bin/gib build \"$IMAGE\" --parents-from-registry --push --json > \"build-$IMAGE.json\""
          ],
          artifacts: {paths: ["build-$IMAGE.json"]}
        }
      }
  ]
  | from_entries
)
