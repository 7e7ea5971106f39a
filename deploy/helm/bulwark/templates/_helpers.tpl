{{/* Names, labels and the pieces every pod shares. */}}

{{- define "bulwark.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bulwark.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "bulwark.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bulwark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bulwark.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bulwark.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bulwark
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "api") */}}
{{- define "bulwark.componentLabels" -}}
{{ include "bulwark.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "bulwark.componentSelector" -}}
{{ include "bulwark.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* gRPC target of a service's pods, behind its headless Service: the DNS name resolves to
every ready pod and the client balances round_robin over them.
(dict "root" $ "component" "users") */}}
{{- define "bulwark.grpcTarget" -}}
{{- $svc := index .root.Values.services .component -}}
dns:///{{ include "bulwark.fullname" .root }}-{{ .component }}.{{ .root.Release.Namespace }}.svc.{{ .root.Values.clusterDomain }}:{{ $svc.port }}
{{- end }}

{{/* The image of a service: (dict "root" $ "image" $svc.image) */}}
{{- define "bulwark.image" -}}
{{- $registry := default .root.Values.image.registry .root.Values.global.imageRegistry -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if $registry }}{{ $registry }}/{{ end }}{{ .image.repository }}
{{- if .image.digest }}@{{ .image.digest }}{{ else }}:{{ $tag }}{{ end }}
{{- end }}

{{/* A third-party image: (dict "root" $ "image" .Values.dev.postgresql.image) */}}
{{- define "bulwark.thirdPartyImage" -}}
{{- $registry := default .image.registry .root.Values.global.imageRegistry -}}
{{ $registry }}/{{ .image.repository }}:{{ .image.tag }}
{{- if .image.digest }}@{{ .image.digest }}{{ end }}
{{- end }}

{{- define "bulwark.vaultPrefix" -}}
{{ .Values.vault.prefix }}
{{- end }}

{{/* Vault's address: the in-chart dev OpenBao when on, else vault.address. */}}
{{- define "bulwark.vaultAddr" -}}
{{- if .Values.dev.openbao.enabled -}}
http://{{ include "bulwark.fullname" . }}-openbao:8200
{{- else -}}
{{ required "vault.address is required when dev.openbao.enabled is false" .Values.vault.address }}
{{- end }}
{{- end }}

{{- define "bulwark.postgresHost" -}}
{{- if .Values.dev.postgresql.enabled -}}
{{ include "bulwark.fullname" . }}-postgresql
{{- else -}}
{{ required "postgresql.host is required when dev.postgresql.enabled is false" .Values.postgresql.host }}
{{- end }}
{{- end }}

{{- define "bulwark.redisURL" -}}
{{- if .Values.dev.redis.enabled -}}
redis://{{ include "bulwark.fullname" . }}-redis:6379/0
{{- else -}}
{{ required "redis.url is required when dev.redis.enabled is false" .Values.redis.url }}
{{- end }}
{{- end }}

{{/* Redis host and port (a list), from the in-chart Redis or redis.url. */}}
{{- define "bulwark.redisHostPort" -}}
{{- $hostPort := splitList ":" (urlParse (include "bulwark.redisURL" .)).host -}}
{{- if gt (len $hostPort) 1 }}{{ first $hostPort }} {{ last $hostPort }}{{ else }}{{ first $hostPort }} 6379{{ end }}
{{- end }}

{{/* Every Redis key of the deployment starts with this; Vault's ACL users are limited to it. */}}
{{- define "bulwark.redisPrefix" -}}
{{ .Values.vault.prefix }}:
{{- end }}

{{/* A service's database URL: (dict "root" $ "svc" $svc "userinfo" "")
The services' URL has no credentials (they come from Vault with every connection);
the Vault setup passes userinfo "{{username}}:{{password}}@" for its plugin. */}}
{{- define "bulwark.databaseURL" -}}
postgresql://{{ .userinfo }}{{ include "bulwark.postgresHost" .root }}:{{ int .root.Values.postgresql.port }}/{{ .svc.database }}
{{- end }}

{{/* Env every Bulwark process (services and their jobs) reads: (dict "root" $ "name" "auth") */}}
{{- define "bulwark.commonEnv" -}}
- name: BULWARK_ENV
  value: production
- name: VAULT_ADDR
  value: {{ include "bulwark.vaultAddr" .root | quote }}
{{- if .root.Values.vault.caConfigMap }}
- name: VAULT_CACERT
  value: /etc/bulwark/vault-ca/ca.crt
{{- end }}
- name: BULWARK_VAULT_AUTH
  value: kubernetes
- name: BULWARK_VAULT_PREFIX
  value: {{ .root.Values.vault.prefix | quote }}
- name: BULWARK_VAULT_K8S_MOUNT
  value: {{ .root.Values.vault.kubernetesMount | quote }}
- name: BULWARK_VAULT_K8S_TOKEN_FILE
  value: /var/run/secrets/vault/token
- name: BULWARK_NAMESPACE
  value: {{ .root.Release.Namespace | quote }}
- name: REDIS_URL
  value: {{ include "bulwark.redisURL" .root | quote }}
- name: BULWARK_REDIS_PREFIX
  value: {{ include "bulwark.redisPrefix" .root | quote }}
- name: BULWARK_ISSUER
  value: {{ .root.Values.issuer | quote }}
- name: LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: {{ upper .name }}_DATABASE_URL
  value: {{ include "bulwark.databaseURL" (dict "root" .root "svc" .svc "userinfo" "") | quote }}
{{- with .root.Values.otlp.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Volumes of every Bulwark pod: /tmp and the Vault-audience token. */}}
{{- define "bulwark.volumes" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
- name: vault-token
  projected:
    defaultMode: 0440
    sources:
      - serviceAccountToken:
          audience: {{ .Values.vault.audience }}
          expirationSeconds: 3600
          path: token
{{- with .Values.vault.caConfigMap }}
- name: vault-ca
  configMap:
    name: {{ . }}
{{- end }}
{{- end }}

{{- define "bulwark.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: vault-token
  mountPath: /var/run/secrets/vault
  readOnly: true
{{- if .Values.vault.caConfigMap }}
- name: vault-ca
  mountPath: /etc/bulwark/vault-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "bulwark.serviceAccountName" -}}
{{- if .svc.serviceAccount.name -}}
{{ .svc.serviceAccount.name }}
{{- else -}}
{{ .root.Values.vault.prefix }}-{{ .name }}
{{- end }}
{{- end }}

{{/* Ports of the datastores and Vault, and which release components reach each. */}}
{{- define "bulwark.targetPort" -}}
{{- $redisPort := 6379 -}}
{{- if not .root.Values.dev.redis.enabled -}}
{{- $redisPort = int (last (splitList " " (include "bulwark.redisHostPort" .root))) -}}
{{- end -}}
{{- $ports := dict "postgresql" (int .root.Values.postgresql.port) "redis" $redisPort "vault" (int .root.Values.networkPolicy.vaultPort) "otlp" (int .root.Values.otlp.port) -}}
{{- if and (eq .target "vault") .root.Values.dev.openbao.enabled }}8200{{ else if and (eq .target "postgresql") .root.Values.dev.postgresql.enabled }}5432{{ else }}{{ get $ports .target }}{{ end }}
{{- end }}

{{/* One egress rule to a datastore, Vault or the OTLP collector: the in-chart pod when its
dev copy is on, else the configured peers; nothing at all when there is no peer (never an
empty `to`, which would mean "anywhere"). */}}
{{- define "bulwark.egressTo" -}}
{{- $v := .root.Values -}}
{{- $dev := dict "postgresql" $v.dev.postgresql.enabled "redis" $v.dev.redis.enabled "vault" $v.dev.openbao.enabled "otlp" false -}}
{{- $component := dict "postgresql" "postgresql" "redis" "redis" "vault" "openbao" -}}
{{- $peers := dict "postgresql" $v.networkPolicy.postgresqlPeers "redis" $v.networkPolicy.redisPeers "vault" $v.networkPolicy.vaultPeers "otlp" $v.networkPolicy.otlpPeers -}}
{{- $on := or (ne .target "otlp") $v.otlp.endpoint -}}
{{- if and $on (get $dev .target) }}
- to:
    - podSelector:
        matchLabels:
          {{- include "bulwark.componentSelector" (dict "root" .root "component" (get $component .target)) | nindent 10 }}
  ports:
    - {protocol: TCP, port: {{ include "bulwark.targetPort" . }}}
{{- else if and $on (get $peers .target) }}
- to:
    {{- toYaml (get $peers .target) | nindent 4 }}
  ports:
    - {protocol: TCP, port: {{ include "bulwark.targetPort" . }}}
{{- end }}
{{- end }}
