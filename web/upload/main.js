// The upload page of a school's BCDI bases (GET /v1/upload), shown in the Cyberlibrairie's
// iframe. Uppy's Dashboard picks and shows the archives; its S3 multipart plugin sends the parts
// straight to storage through URLs presigned by the upload API; this file maps the plugin's five
// callbacks onto that API and adds what Uppy does not know: which base each archive is, resuming
// an upload the server already knows, the final "Envoyer" and French messages for screen readers.
//
// Built by scripts/build-assets into shared/assets/upload/ (committed, embedded in the binary).

import AwsS3 from '@uppy/aws-s3'
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import fr_FR from '@uppy/locales/lib/fr_FR.js'

import formatBytes from './bytes.js'
import { describe, nextDelay } from './status.js'

import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import './page.css'

const TOKEN_KEY = 'bcdi-upload-token'
// The API sits next to the page: /v1/upload → /v1/upload/session, whatever prefix a gateway adds.
const API_BASE = new URL('./', window.location.href)
// Waits between tries of a failed part (ms): the first retry is immediate, later ones back off.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000]
const BASE_CHOICES = ['Principale', 'Travail personnel', 'Manuels']
const OTHER = '__other__'

const MESSAGES = {
  expired: 'Votre session a expiré. Rouvrez la page depuis la Cyberlibrairie.',
  expiredWhileFollowing:
    "Votre session d'envoi a expiré : cette page ne peut plus suivre l'installation de vos bases. " +
    "La Cyberlibrairie affiche l'état de votre serveur ; pour envoyer d'autres archives, " +
    'rouvrez la page depuis la Cyberlibrairie.',
  followInterrupted:
    'La connexion au service est interrompue : nouvel essai dans quelques secondes…',
  noToken:
    "Ce lien d'envoi est incomplet. Rouvrez la page depuis la Cyberlibrairie.",
  network:
    'La connexion au service est interrompue. Vérifiez votre connexion à Internet : ' +
    "l'envoi reprendra de lui-même, ou cliquez sur « Réessayer ».",
  unavailable:
    'Le service est momentanément indisponible. Réessayez dans quelques minutes.',
  wrongType: 'Seules les archives .zip sont acceptées (fichiers créés par « Sauvegarder » dans BCDI).',
  gone: "Cette archive n'est plus connue du serveur : retirez-la puis ajoutez-la de nouveau.",
  refused: 'Le serveur a refusé cette demande.',
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const $ = (selector) => document.querySelector(selector)

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue
    if (name === 'text') node.textContent = value
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value)
    else node.setAttribute(name, value === true ? '' : value)
  }
  for (const child of children) if (child != null) node.append(child)
  return node
}

function plural(count, one, many) {
  return `${count} ${count > 1 ? many : one}`
}

// ---------------------------------------------------------------------------------------------
// What the screen reader hears, and what everyone sees when something goes wrong

let lastAnnouncement = ''

function announce(text) {
  const region = $('#live')
  // The same sentence twice is not re-read by every screen reader: vary it invisibly.
  region.textContent = text === lastAnnouncement ? `${text}\u00a0` : text
  lastAnnouncement = region.textContent
}

function showError(text) {
  const box = $('#alert')
  box.textContent = text
  box.hidden = false
}

function clearError() {
  const box = $('#alert')
  box.textContent = ''
  box.hidden = true
}

// ---------------------------------------------------------------------------------------------
// The session token: in the fragment on first load (never sent to a server log), then kept for
// this tab only so that a reload of the frame can resume.

function readToken() {
  const fragment = new URLSearchParams(window.location.hash.slice(1))
  let token = fragment.get('token')
  if (token) {
    try {
      window.sessionStorage.setItem(TOKEN_KEY, token)
    } catch {
      // Storage may be refused in a third-party frame: the token still works for this load.
    }
    window.history.replaceState(null, '', window.location.pathname + window.location.search)
  } else {
    try {
      token = window.sessionStorage.getItem(TOKEN_KEY)
    } catch {
      token = null
    }
  }
  return token
}

const token = readToken()

// ---------------------------------------------------------------------------------------------
// The upload API

class ApiError extends Error {
  constructor(message, { status = 0, code = null, fields = null } = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.fields = fields
    // Read by the S3 plugin to decide whether to retry (4xx: no; 5xx and network: yes).
    this.source = { status }
  }
}

let sessionExpired = false

function expire() {
  if (sessionExpired) return
  sessionExpired = true
  uppy?.pauseAll()
  dashboard?.setOptions({ disabled: true })
  $('#upload').disabled = true
  $('#submit').disabled = true
  $('#again').hidden = true
  showError(following ? MESSAGES.expiredWhileFollowing : MESSAGES.expired)
  stopFollowing()
}

function messageFor(status, body, context) {
  const fields = body?.fields ?? {}
  if (status === 401) return MESSAGES.expired
  if (status === 404) return context === 'file' ? MESSAGES.gone : MESSAGES.expired
  if (status === 413) {
    const limit = session?.limits?.max_file_size
    return limit
      ? `Cette archive est trop volumineuse : ${formatBytes(limit)} au plus par archive.`
      : 'Cette archive est trop volumineuse.'
  }
  if (status === 400) {
    if ('name' in fields || 'extension' in fields) return MESSAGES.wrongType
    if ('size' in fields) return "La taille de l'archive n'est pas acceptée."
    if ('base' in fields) {
      return "Le nom de la base n'est pas accepté : de 1 à 64 caractères, sans « / » ni « \\ »."
    }
    if ('parts' in fields) return "Une partie de l'archive est manquante ou abîmée : réessayez."
    return MESSAGES.refused
  }
  if (status === 409) {
    if (context === 'submit') {
      return "L'envoi n'est pas possible maintenant : terminez ou abandonnez d'abord les transferts en cours."
    }
    if (body?.error === 'not_ready') {
      return "Vos bases sont en cours de vérification et d'installation : attendez la fin avant d'envoyer d'autres archives."
    }
    if (context === 'create') {
      const max = session?.limits?.max_files
      return `Vous avez atteint le nombre maximal d'archives${max ? ` (${max})` : ''} : supprimez-en une avant d'en ajouter une autre.`
    }
    return "Cette action n'est plus possible : rechargez la page."
  }
  if (status === 429 || status >= 500) return MESSAGES.unavailable
  return MESSAGES.refused
}

async function api(method, path, body, { context = 'session', signal } = {}) {
  if (sessionExpired) throw new ApiError(MESSAGES.expired, { status: 401 })
  const headers = { Authorization: `Bearer ${token}` }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  let response
  try {
    response = await fetch(new URL(path, API_BASE), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      signal,
    })
  } catch (error) {
    if (error?.name === 'AbortError') throw error
    throw new ApiError(MESSAGES.network)
  }
  let payload = null
  if (response.status !== 204) {
    try {
      payload = await response.json()
    } catch {
      payload = null
    }
  }
  if (response.ok) return payload
  if (response.status === 401) expire()
  throw new ApiError(messageFor(response.status, payload, context), {
    status: response.status,
    code: payload?.error ?? null,
    fields: payload?.fields ?? null,
  })
}

const filePath = (id, rest = '') => `upload/files/${encodeURIComponent(id)}${rest}`

// ---------------------------------------------------------------------------------------------
// State beyond Uppy's: the session as the server sees it, and each Uppy file's server record

let session = null // GET /v1/upload/session
const serverIdOf = new Map() // Uppy file id → server file id
const partSizeOf = new WeakMap() // the file's bytes (Blob) → part size chosen by the server
const selection = new Map() // Uppy file id → { base, other, esidoc }
let esidocChoice = null // Uppy file id of the archive exported to e-sidoc, or null

async function refreshSession() {
  session = await api('GET', 'upload/session')
  renderServerFiles()
  updateSubmit()
  return session
}

const serverFiles = () => session?.files ?? []

// The server file an added file continues: same name and size, upload not finished. This is
// what makes "pick the same file again after a reload" send only the missing parts.
function interruptedMatch(file) {
  return serverFiles().find(
    (known) =>
      known.state === 'uploading' &&
      known.name === file.name &&
      known.size === file.size &&
      ![...serverIdOf.values()].includes(known.id),
  )
}

function chosenBase(fileId) {
  const choice = selection.get(fileId)
  if (!choice) return 'Principale'
  return choice.base === OTHER ? choice.other.trim() : choice.base
}

// Makes sure the server knows the file, then tells the S3 plugin to resume it: a new file is
// "resumed" from zero parts, so both cases take the same path and the part size is the server's.
async function ensureServerFile(file) {
  let id = serverIdOf.get(file.id)
  let record = id ? serverFiles().find((known) => known.id === id) : null
  if (!record) {
    await refreshSession()
    record = interruptedMatch(file)
    const base = chosenBase(file.id)
    const esidoc = esidocChoice === file.id
    // (The contract's file object may not carry esidoc_export: compare it only when it does.)
    const changed =
      record &&
      (record.base !== base ||
        ('esidoc_export' in record && Boolean(record.esidoc_export) !== esidoc))
    if (changed) {
      // The school changed its mind about this archive: start it again under the new name.
      await api('DELETE', filePath(record.id), undefined, { context: 'file' }).catch(() => {})
      record = null
    }
    if (!record) {
      record = await api(
        'POST',
        'upload/files',
        { name: file.name, size: file.size, base, esidoc_export: esidoc },
        { context: 'create' },
      )
      session.files = [...serverFiles(), record]
    }
    id = record.id
    serverIdOf.set(file.id, id)
  }
  partSizeOf.set(file.data, record.part_size)
  uppy.setFileState(file.id, { s3Multipart: { key: id, uploadId: id } })
  renderSelection()
  return record
}

// ---------------------------------------------------------------------------------------------
// Uppy

const limits = { max_files: 20, max_file_size: null, extensions: ['.zip'] }

let uppy = null
let dashboard = null

function buildUppy() {
  uppy = new Uppy({
    id: 'bcdi-bases',
    autoProceed: false,
    allowMultipleUploadBatches: true,
    locale: fr_FR,
    restrictions: {
      allowedFileTypes: limits.extensions,
      maxFileSize: limits.max_file_size,
      maxNumberOfFiles: limits.max_files,
    },
    onBeforeUpload: () => checkSelection(),
  })

  uppy.use(Dashboard, {
    target: '#dashboard',
    inline: true,
    width: '100%',
    height: 300,
    hideUploadButton: true,
    hidePauseResumeButton: true,
    proudlyDisplayPoweredByUppy: false,
    disableThumbnailGenerator: true,
    showRemoveButtonAfterComplete: false,
    note: limitsNote(),
    locale: {
      strings: {
        dropPasteFiles: 'Déposez ici vos archives .zip ou %{browseFiles}',
        browseFiles: 'choisissez-les sur votre ordinateur',
        dropHint: 'Déposez vos archives ici',
        youCanOnlyUploadFileTypes: MESSAGES.wrongType,
        uploadComplete: 'Transfert terminé',
        uploadFailed: 'Le transfert a échoué',
        uploading: 'Transfert en cours',
        complete: 'Terminé',
        retry: 'Réessayer',
        xFilesSelected: { 0: '%{smart_count} archive choisie', 1: '%{smart_count} archives choisies' },
        uploadingXFiles: {
          0: 'Transfert de %{smart_count} archive',
          1: 'Transfert de %{smart_count} archives',
        },
        addMoreFiles: "Ajouter d'autres archives",
        addMore: "Ajouter d'autres archives",
        removeFile: "Retirer l'archive",
        cancel: 'Annuler',
        back: 'Retour',
      },
    },
  })
  dashboard = uppy.getPlugin('Dashboard')

  uppy.use(AwsS3, {
    id: 'BcdiStorage',
    limit: 6,
    retryDelays: RETRY_DELAYS,
    // Every archive goes through the multipart path: it is the only one the API offers.
    shouldUseMultipart: () => true,
    getChunkSize: (data) => partSizeOf.get(data) ?? 5 * 1024 * 1024,
    createMultipartUpload: async (file) => {
      const record = await ensureServerFile(file)
      return { uploadId: record.id, key: record.id }
    },
    listParts: async (file, { uploadId, signal }) => {
      const body = await api('GET', filePath(uploadId, '/parts'), undefined, {
        context: 'file',
        signal,
      })
      return body.parts.map(({ part, etag, size }) => ({ PartNumber: part, ETag: etag, Size: size }))
    },
    signPart: async (file, { uploadId, partNumber, signal }) => {
      const body = await api(
        'POST',
        filePath(uploadId, '/part-urls'),
        { parts: [partNumber] },
        { context: 'file', signal },
      )
      const signed = body.urls.find((entry) => entry.part === partNumber)
      if (!signed) throw new ApiError(MESSAGES.unavailable, { status: 503 })
      return { method: 'PUT', url: signed.url }
    },
    completeMultipartUpload: async (file, { uploadId, parts, signal }) => {
      const record = await api(
        'POST',
        filePath(uploadId, '/complete'),
        { parts: parts.map(({ PartNumber, ETag }) => ({ part: PartNumber, etag: ETag })) },
        { context: 'file', signal },
      )
      replaceServerFile(record)
      return {}
    },
    abortMultipartUpload: async (file, { uploadId }) => {
      await deleteServerFile(uploadId)
    },
  })

  // Before the S3 plugin starts a file, the server must know it (and its part size).
  uppy.addPreProcessor(async (fileIds) => {
    clearError()
    for (const fileId of fileIds) {
      const file = uppy.getFile(fileId)
      if (!file || file.progress.uploadComplete) continue
      try {
        await ensureServerFile(file)
      } catch (error) {
        // Marks this file as failed (the uploader skips it); the others go on.
        uppy.emit('upload-error', file, error)
      }
    }
  })

  // Uppy reports refused files (restriction-failed) just before the accepted ones (files-added):
  // an error of the same batch must stay on screen.
  let refusedInBatch = false
  uppy.on('files-added', (files) => {
    const keepError = refusedInBatch
    refusedInBatch = false
    if (files.length === 0) return
    for (const file of files) {
      const match = interruptedMatch(file)
      const base = match?.base ?? guessBase(file.name)
      const known = BASE_CHOICES.includes(base)
      selection.set(file.id, { base: known ? base : OTHER, other: known ? '' : base })
      const exported = serverFiles().some((known) => known.esidoc_export && known.state === 'complete')
      if (match ? match.esidoc_export : esidocChoice == null && base === 'Principale' && !exported) {
        esidocChoice = file.id
      }
    }
    if (!keepError) clearError()
    renderSelection()
    const resumed = files.filter((file) => interruptedMatch(file))
    let text = `${plural(files.length, 'archive ajoutée', 'archives ajoutées')} : ${files
      .map((file) => file.name)
      .join(', ')}.`
    if (resumed.length > 0) {
      text += ` ${plural(resumed.length, 'envoi interrompu', 'envois interrompus')} reprendra là où il s'était arrêté.`
    }
    announce(`${text} Vérifiez le nom de chaque base puis cliquez sur « Transférer les archives ».`)
  })

  uppy.on('file-removed', (file) => {
    const id = serverIdOf.get(file.id)
    serverIdOf.delete(file.id)
    selection.delete(file.id)
    if (esidocChoice === file.id) esidocChoice = null
    // A received archive removed from the list is removed from the server too; one still being
    // sent is aborted by the S3 plugin through abortMultipartUpload.
    if (id && file.progress.uploadComplete) deleteServerFile(id).catch(() => {})
    renderSelection()
    announce(`${file.name} retirée.`)
  })

  uppy.on('restriction-failed', (file, error) => {
    refusedInBatch = true
    const name = file?.name ? `${file.name} : ` : ''
    let text = error?.message ?? MESSAGES.refused
    if (limits.max_file_size && file?.size > limits.max_file_size) {
      text = `archive trop volumineuse (${formatBytes(file.size)}) ; ${formatBytes(limits.max_file_size)} au plus par archive.`
    } else if (file?.name && !file.name.toLowerCase().endsWith('.zip')) {
      text = MESSAGES.wrongType
    }
    showError(`${name}${text}`)
    announce(`${name}${text}`)
  })

  let announcedStep = -1
  uppy.on('upload', () => {
    announcedStep = -1
    renderSelection()
    updateSubmit()
  })
  uppy.on('progress', (percent) => {
    const step = Math.floor(percent / 10)
    if (step !== announcedStep && percent < 100) {
      announcedStep = step
      announce(`Transfert en cours : ${percent} %.`)
    }
  })
  uppy.on('upload-success', (file) => {
    announce(`${file.name} : archive reçue.`)
    updateSubmit()
  })
  uppy.on('upload-error', (file, error) => {
    if (!file) return
    const text = `${file.name} : ${error?.message ?? MESSAGES.refused}`
    showError(text)
    announce(text)
    if (error?.status === 404) serverIdOf.delete(file.id)
    updateSubmit()
  })
  uppy.on('complete', (result) => {
    if (result.failed?.length === 0 && result.successful?.length > 0) {
      announce(
        'Toutes les archives ont été reçues. Vérifiez la liste puis cliquez sur « Envoyer ».',
      )
    }
    refreshSession().catch(() => {})
  })
  uppy.on('state-update', () => updateControls())
}

function limitsNote() {
  const parts = ['Archives .zip uniquement, une par base']
  if (limits.max_file_size) parts.push(`${formatBytes(limits.max_file_size)} au plus chacune`)
  if (limits.max_files) parts.push(`${limits.max_files} au plus`)
  return `${parts.join(', ')}.`
}

// data.zip is the main base, travperso the pupils' work, manuels the textbooks (BCDI's names).
function guessBase(name) {
  const lower = name.toLowerCase()
  if (/trav|perso/.test(lower)) return 'Travail personnel'
  if (/manuel/.test(lower)) return 'Manuels'
  return 'Principale'
}

function replaceServerFile(record) {
  if (!session) return
  session.files = [...serverFiles().filter((known) => known.id !== record.id), record]
  renderServerFiles()
  updateSubmit()
}

async function deleteServerFile(id) {
  try {
    await api('DELETE', filePath(id), undefined, { context: 'file' })
  } catch (error) {
    if (error?.status !== 404) throw error
  }
  if (session) session.files = serverFiles().filter((known) => known.id !== id)
  renderServerFiles()
  updateSubmit()
}

// ---------------------------------------------------------------------------------------------
// Step 2: which base each archive is, and which one goes to e-sidoc

function checkSelection() {
  const pending = uppy.getFiles().filter((file) => !file.progress.uploadStarted)
  const names = new Map()
  for (const file of pending) {
    const base = chosenBase(file.id)
    if (!base || base.length > 64 || /[\\/]/.test(base)) {
      showError(
        `${file.name} : indiquez le nom de la base (de 1 à 64 caractères, sans « / » ni « \\ »).`,
      )
      document.getElementById(`other-${file.id}`)?.focus()
      return false
    }
    if (names.has(base)) {
      showError(
        `${names.get(base)} et ${file.name} portent le même nom de base (« ${base} ») : ` +
          'choisissez un nom différent pour chacune.',
      )
      document.getElementById(`base-${file.id}`)?.focus()
      return false
    }
    names.set(base, file.name)
  }
  return true
}

function renderSelection() {
  const files = uppy.getFiles()
  const section = $('#step-bases')
  const body = $('#bases-body')
  section.hidden = files.length === 0
  // Keep the focused control across re-renders, for keyboard users.
  const focused = document.activeElement?.id
  body.replaceChildren(
    ...files.map((file) => {
      const choice = selection.get(file.id) ?? { base: 'Principale', other: '' }
      const locked = Boolean(file.progress.uploadStarted) || serverIdOf.has(file.id)
      const selectId = `base-${file.id}`
      const otherId = `other-${file.id}`
      const select = el(
        'select',
        {
          id: selectId,
          'aria-label': `Base de ${file.name}`,
          disabled: locked,
          onchange: (event) => {
            choice.base = event.target.value
            selection.set(file.id, choice)
            renderSelection()
            if (choice.base === OTHER) document.getElementById(otherId)?.focus()
          },
        },
        ...BASE_CHOICES.map((base) =>
          el('option', { value: base, selected: choice.base === base, text: base }),
        ),
        el('option', { value: OTHER, selected: choice.base === OTHER, text: 'Autre…' }),
      )
      const other =
        choice.base === OTHER
          ? el(
              'span',
              { class: 'other' },
              el('label', { for: otherId, text: 'Nom de la base' }),
              el('input', {
                id: otherId,
                type: 'text',
                maxlength: '64',
                value: choice.other,
                disabled: locked,
                required: true,
                oninput: (event) => {
                  choice.other = event.target.value
                },
              }),
            )
          : null
      const radio = el('input', {
        type: 'radio',
        name: 'esidoc',
        id: `esidoc-${file.id}`,
        value: file.id,
        checked: esidocChoice === file.id,
        disabled: locked,
        onchange: () => {
          esidocChoice = file.id
        },
      })
      return el(
        'tr',
        {},
        el('th', { scope: 'row', text: file.name }),
        el('td', {}, select, other),
        el(
          'td',
          { class: 'esidoc' },
          radio,
          el('label', {
            for: `esidoc-${file.id}`,
            class: 'visually-hidden',
            text: `${file.name} est la base exportée vers e-sidoc`,
          }),
        ),
      )
    }),
  )
  const none = $('#esidoc-none')
  none.checked = esidocChoice == null
  const anyLocked = files.some((file) => serverIdOf.has(file.id))
  none.disabled = anyLocked && files.every((file) => serverIdOf.has(file.id))
  updateControls()
  if (focused) document.getElementById(focused)?.focus()
}

// ---------------------------------------------------------------------------------------------
// Step 3: what the server holds, and "Envoyer"

function renderServerFiles() {
  const complete = serverFiles().filter((file) => file.state === 'complete')
  const inUppy = new Set(serverIdOf.values())
  const interrupted = serverFiles().filter(
    (file) => file.state === 'uploading' && !inUppy.has(file.id),
  )

  $('#received-empty').hidden = complete.length > 0
  $('#received').replaceChildren(
    ...complete.map((file) =>
      el(
        'li',
        {},
        el(
          'span',
          { class: 'file' },
          `${file.base} — ${file.name} (${formatBytes(file.size)})${
            file.esidoc_export ? ', exportée vers e-sidoc' : ''
          }`,
          refusedFiles.has(file.id)
            ? el('strong', { class: 'refused', text: " — n'a pas pu être utilisée" })
            : null,
        ),
        el('button', {
          type: 'button',
          class: 'secondary',
          'aria-label': `Supprimer ${file.name} (${file.base})`,
          text: 'Supprimer',
          disabled: sessionExpired || submitted,
          onclick: () => removeReceived(file),
        }),
      ),
    ),
  )

  $('#interrupted-section').hidden = interrupted.length === 0
  $('#interrupted').replaceChildren(
    ...interrupted.map((file) =>
      el(
        'li',
        {},
        el('span', {
          class: 'file',
          text: `${file.base} — ${file.name} (${formatBytes(file.size)})`,
        }),
        el('button', {
          type: 'button',
          class: 'secondary',
          'aria-label': `Abandonner l'envoi de ${file.name}`,
          text: 'Abandonner',
          onclick: () => removeReceived(file),
        }),
      ),
    ),
  )
}

async function removeReceived(file) {
  clearError()
  try {
    for (const [uppyId, serverId] of serverIdOf) {
      if (serverId === file.id) {
        serverIdOf.delete(uppyId)
        uppy.removeFile(uppyId)
      }
    }
    await deleteServerFile(file.id)
    refusedFiles.delete(file.id)
    renderServerFiles()
    announce(`${file.name} supprimée.`)
  } catch (error) {
    showError(error.message)
    announce(error.message)
  }
}

// The buttons follow Uppy's state: "Transférer" while some archive waits to be sent (or failed
// and can be tried again), "Envoyer" once every archive is received and nothing is under way.
function updateControls() {
  const files = uppy?.getFiles() ?? []
  $('#upload').disabled =
    sessionExpired ||
    submitted ||
    !files.some((file) => !file.progress.uploadStarted || file.error)
  updateSubmit()
}

function updateSubmit() {
  const button = $('#submit')
  const hint = $('#submit-hint')
  const complete = serverFiles().filter((file) => file.state === 'complete').length
  const uppyFiles = uppy?.getFiles() ?? []
  const transferring = uppyFiles.some(
    (file) => file.progress.uploadStarted && !file.progress.uploadComplete && !file.error,
  )
  const waiting = uppyFiles.some((file) => !file.progress.uploadStarted)
  const interrupted = serverFiles().some(
    (file) => file.state === 'uploading' && ![...serverIdOf.values()].includes(file.id),
  )
  let reason = ''
  if (sessionExpired) reason = MESSAGES.expired
  else if (submitted) reason = ''
  else if (transferring) reason = 'Attendez la fin des transferts en cours.'
  else if (waiting) reason = 'Des archives choisies ne sont pas encore transférées.'
  else if (interrupted) reason = 'Reprenez ou abandonnez les envois interrompus.'
  else if (complete === 0) reason = "Aucune archive n'a encore été reçue."
  button.disabled = reason !== '' || submitting || submitted
  hint.textContent = reason
}

let submitting = false
// Once sent, the establishment is in status 3 and takes no archive until mounting ends: the
// page locks its controls and follows the status; an E2 unlocks them to upload again.
let submitted = false

async function submit() {
  if (submitting) return
  submitting = true
  updateSubmit()
  clearError()
  announce('Envoi de vos bases…')
  // The outcome of this submit is a status entered after this instant: until then, the 4 or E2
  // of a previous submit is still what the server says.
  const before = session?.establishment?.status_changed_at ?? null
  try {
    const answer = await api('POST', 'upload/submit', {}, { context: 'submit' })
    submitted = true
    lockAfterSubmit()
    showProgress(answer)
    focusResult()
    follow(before)
  } catch (error) {
    showError(error.message)
    announce(error.message)
  } finally {
    submitting = false
    updateSubmit()
  }
}

function lockAfterSubmit() {
  dashboard?.setOptions({ disabled: true })
  for (const control of document.querySelectorAll(
    '#bcdi-upload button, #bcdi-upload select, #bcdi-upload input',
  )) {
    control.disabled = true
  }
  $('#again').hidden = true
  updateControls()
}

// After an E2: the school may send archives again (E2 accepts uploads). Uppy's list is emptied
// without touching the server (the received archives stay, the unusable one marked), so that
// the next pick starts afresh.
function unlockAfterFailure() {
  submitted = false
  serverIdOf.clear()
  selection.clear()
  esidocChoice = null
  try {
    uppy?.clear()
  } catch {
    // Nothing is uploading after a submit; if Uppy disagrees, its list simply stays.
  }
  dashboard?.setOptions({ disabled: false })
  $('#esidoc-none').disabled = false
  renderSelection()
  renderServerFiles()
  updateControls()
  const again = $('#again')
  again.hidden = false
  again.disabled = false
}

// Archives the last mounting could not use (server file id → true), marked in the received list.
const refusedFiles = new Set()

// Shows the establishment's state in the result box, a polite live region that exists from the
// page's load so that each change is read out.
function showProgress(progress) {
  const names = new Map(serverFiles().map((file) => [file.id, file.name]))
  const { state, title, lines } = describe(progress, names)
  const result = $('#result')
  result.dataset.state = state
  $('#result-title').textContent = title
  $('#result-text').replaceChildren(...lines.map((line) => el('p', { text: line })))
  $('#result-note').textContent = ''
  return state
}

// Focus goes to the outcome after « Envoyer » (whose button is now disabled), unless the user
// has moved elsewhere meanwhile: keyboard users are not left on nothing, nor pulled away.
function focusResult() {
  const active = document.activeElement
  if (!active || active === document.body || active.disabled || $('#result').contains(active)) {
    $('#result').focus()
  }
}

let followTimer = null
let following = false

function stopFollowing() {
  following = false
  if (followTimer) clearTimeout(followTimer)
  followTimer = null
}

// Reads GET /v1/upload/session until the establishment reaches 4 or E2 (entered after
// `before`), the session expires, or the page is left. A failed read (network, 5xx) is tried
// again later, the waits backing off; a few in a row are said, then cleared once a read works.
function follow(before) {
  stopFollowing()
  following = true
  let delay = 0
  let failures = 0
  const expiresAt = Date.parse(session?.expires_at ?? '')
  const schedule = () => {
    delay = nextDelay(delay)
    if (Number.isFinite(expiresAt) && Date.now() + delay >= expiresAt) {
      // The next read would come after the session ends: say so now rather than after a 401.
      followTimer = setTimeout(() => expire(), Math.max(0, expiresAt - Date.now()))
      return
    }
    followTimer = setTimeout(read, delay)
  }
  const read = async () => {
    followTimer = null
    if (!following) return
    let current
    try {
      current = await api('GET', 'upload/session')
    } catch (error) {
      if (!following) return
      if (error?.status === 401 || error?.status === 403 || error?.status === 404) {
        expire()
        return
      }
      failures += 1
      if (failures >= 2) $('#result-note').textContent = MESSAGES.followInterrupted
      schedule()
      return
    }
    if (!following) return
    failures = 0
    session = current
    const progress = current?.establishment
    const status = progress?.status
    const fresh = progress?.status_changed_at !== before
    if ((status === '4' || status === 'E2') && fresh) {
      stopFollowing()
      finish(progress)
      return
    }
    if (status === '3') showProgress(progress)
    else $('#result-note').textContent = ''
    schedule()
  }
  schedule()
}

function finish(progress, { focus = true } = {}) {
  refusedFiles.clear()
  if (progress.status === 'E2') {
    for (const base of progress.bases ?? []) if (base.state === 'ERROR') refusedFiles.add(base.id)
  }
  showProgress(progress)
  if (progress.status === 'E2') {
    unlockAfterFailure()
    if (focus) focusResult()
  } else {
    renderServerFiles()
  }
}

// ---------------------------------------------------------------------------------------------
// Start

function wireStaticControls() {
  $('#upload').addEventListener('click', () => {
    clearError()
    uppy.upload().catch(() => {})
  })
  $('#submit').addEventListener('click', submit)
  // The way out of an E2: straight to the file picker, for keyboard and screen-reader users.
  $('#again').addEventListener('click', () => {
    const browse = document.querySelector('#dashboard .uppy-Dashboard-browse')
    browse?.scrollIntoView({ block: 'center' })
    browse?.focus()
  })
  $('#esidoc-none').addEventListener('change', () => {
    esidocChoice = null
  })
}

// `data-state` on <body> says when the page is usable ("ready") or stopped ("error").
async function start() {
  wireStaticControls()
  if (!token) {
    $('#upload').disabled = true
    $('#submit').disabled = true
    showError(MESSAGES.noToken)
    document.body.dataset.state = 'error'
    return
  }
  try {
    await refreshSession()
    Object.assign(limits, session.limits ?? {})
  } catch (error) {
    showError(error.message)
    announce(error.message)
    if (sessionExpired) {
      document.body.dataset.state = 'error'
      return
    }
  }
  buildUppy()
  renderSelection()
  renderServerFiles()
  updateSubmit()
  resumeFollowing()
  document.body.dataset.state = 'ready'
}

// A page opened (or reloaded) while the bases are being mounted follows them as after
// « Envoyer »; one opened after an E2 says why, with the form open to upload again.
function resumeFollowing() {
  const progress = session?.establishment
  if (progress?.status === '3') {
    submitted = true
    lockAfterSubmit()
    showProgress(progress)
    follow(progress.status_changed_at)
  } else if (progress?.status === 'E2') {
    finish(progress, { focus: false })
  }
}

start()
