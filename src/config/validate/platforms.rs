//! `platforms:` (the file's and each image's): the platforms gib builds for, each once, and a
//! child of an image of the file only on platforms its parent has.

use super::*;
use crate::stage3::arch;

impl Validator<'_> {
    pub(super) fn platforms(&self, raw: S<Vec<S<String>>>) -> Checked<Vec<Platform>> {
        if raw.value.is_empty() {
            return Err(self.source.error_with_hint(
                raw.referenced,
                "`platforms` is empty",
                format!("name one or more of: {}", arch::names().join(", ")),
            ));
        }
        let mut platforms: Vec<Platform> = Vec::new();
        for item in raw.value {
            let text = item.value.trim();
            let platform = Platform::parse(text)
                .ok()
                .filter(|p| arch::of(p).is_some())
                .ok_or_else(|| {
                    self.source.error_with_hint(
                        item.referenced,
                        format!("`{text}` is not a platform gib builds for"),
                        format!("one of: {}", arch::names().join(", ")),
                    )
                })?;
            if platforms.iter().any(|p| same_arch(p, &platform)) {
                return Err(self
                    .source
                    .error(item.referenced, format!("platform `{text}` is named twice")));
            }
            platforms.push(platform);
        }
        Ok(platforms)
    }

    /// A child of an image of the file is built on its parent's image of each platform, so
    /// it can only have platforms its parent has.
    pub(super) fn check_parent_platforms(
        &self,
        images: &images::ValidatedImages,
        file: Option<&[Platform]>,
    ) -> Checked<()> {
        let host = [Platform::host()];
        let effective = |image: &Image| -> Vec<Platform> {
            image
                .platforms
                .as_deref()
                .or(file)
                .unwrap_or(&host)
                .to_vec()
        };
        for image in images.images.values() {
            let Parent::Image(parent) = &image.from else {
                continue;
            };
            let Some(parent_image) = images.images.get(parent) else {
                continue;
            };
            let theirs = effective(parent_image);
            if let Some(missing) = effective(image)
                .into_iter()
                .find(|p| !theirs.iter().any(|t| same_arch(t, p)))
            {
                return Err(self.source.error_with_hint(
                    images
                        .named_at
                        .get(&image.name)
                        .copied()
                        .unwrap_or(Location::UNKNOWN),
                    format!(
                        "image `{}` is built for {missing}, but its parent `{parent}` is not",
                        image.name
                    ),
                    format!(
                        "add {missing} to `{parent}`'s platforms, or leave it out of `{}`'s",
                        image.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Validator<'_> {
    /// Every platform an image built with Portage is built for has a stage3: a flavor
    /// resolves for each, one `url:`/`path:` is the host's, a per-architecture one names
    /// each.
    pub(super) fn check_stage3_platforms(
        &self,
        stage3: &stage3::Stage3Sources,
        at: Location,
        images: &images::ValidatedImages,
        file: Option<&[Platform]>,
    ) -> Checked<()> {
        let host = [Platform::host()];
        for (name, _) in &images.needs_stage3 {
            let Some(image) = images.images.get(name) else {
                continue;
            };
            let platforms = image.platforms.as_deref().or(file).unwrap_or(&host);
            for platform in platforms {
                let Some(arch) = arch::of(platform) else {
                    continue;
                };
                let covered = match &stage3.main {
                    Stage3::Flavor { .. } => true,
                    _ if !stage3.per_arch.is_empty() => stage3.per_arch.contains_key(arch.gentoo),
                    _ => arch::of(&host[0]) == Some(arch),
                };
                if !covered {
                    return Err(self.source.error_with_hint(
                        at,
                        format!("image `{name}` is built for {platform}, and `stage3:` names no stage3 for it"),
                        format!(
                            "give one per architecture, e.g. `path: {{amd64: stage3-amd64.tar.xz, {}: stage3-{}.tar.xz}}`, or a `flavor`",
                            arch.gentoo, arch.gentoo
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `linux/arm64` and `linux/arm64/v8` are one platform to gib.
fn same_arch(a: &Platform, b: &Platform) -> bool {
    a.os == b.os && a.architecture == b.architecture
}
