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

/// `linux/arm64` and `linux/arm64/v8` are one platform to gib.
fn same_arch(a: &Platform, b: &Platform) -> bool {
    a.os == b.os && a.architecture == b.architecture
}
