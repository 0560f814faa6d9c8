//! The French sentence the Cyberlibrairie shows the school for each status.

use crate::domain::{Establishment, Instant, Status};

pub fn for_school(establishment: &Establishment, now: Instant) -> String {
    let when = |at: Option<Instant>| match at {
        Some(at) if at > now => format!(", fin prévue {}", at.french_around(now)),
        Some(_) => ", elle prend un peu plus de temps que prévu".to_owned(),
        None => String::new(),
    };
    match establishment.status {
        Status::Installing => format!(
            "L'installation de votre serveur BCDI est en cours{}.",
            when(establishment.next_step_at)
        ),
        Status::AwaitingBases => "Votre serveur BCDI est installé. Vous pouvez maintenant envoyer \
             les sauvegardes de vos bases."
            .to_owned(),
        Status::Mounting => format!(
            "Vos bases ont bien été reçues. Leur vérification et leur installation sont en cours{}.",
            when(establishment.next_step_at)
        ),
        Status::Ready => "Votre serveur BCDI est prêt : vos bases sont installées et vous pouvez \
             vous connecter avec le client BCDI."
            .to_owned(),
        Status::InstallFailed => "L'installation de votre serveur BCDI n'a pas abouti. Notre équipe \
             technique en est informée et va la relancer ; vous n'avez rien à faire."
            .to_owned(),
        Status::MountFailed => "Les bases envoyées n'ont pas pu être utilisées. Vérifiez qu'il \
             s'agit bien des sauvegardes BCDI (fichiers .zip) puis envoyez-les à nouveau."
            .to_owned(),
    }
}
