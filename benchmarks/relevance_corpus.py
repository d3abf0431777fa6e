# ruff: noqa: E501 - a data file: one document per line reads best
"""A small, realistic document folder (an office's internal notes) and labelled Japanese queries over it.

Each query names the document(s) that answer it. Most queries spell a word differently from the document
(orthographic variants, inflections, full-width letters), are 2-character words, or are English terms:
the everyday cases the search has to handle. Used by bench_relevance.py.
"""

# fmt: off
DOCUMENTS: dict[str, str] = {
    "soumu/apply-leave.md": "# 有給休暇の申請\n\n有給休暇は勤怠システムから申し込みます。申し込みは取得日の3営業日前までに行ってください。"
        "半日単位の取得もできます。残りの日数は勤怠システムのトップ画面に表示されます。",
    "soumu/overtime.md": "# 残業のルール\n\n月45時間を超える残業には、事前に上長の承認が必要です。"
        "深夜（22時以降）の勤務は原則として禁止です。",
    "soumu/moving.md": "# 引っ越しをしたとき\n\n住所が変わったら、2週間以内に人事部へ届け出てください。"
        "通勤経路が変わる場合は、通勤手当の再計算が行われます。",
    "soumu/parking.md": "# 駐車場の利用\n\n本社の駐車場は事前予約制です。来客用の区画は受付で鍵を受け取ってください。",
    "soumu/meeting-rooms.md": "# 会議室の予約\n\n打ち合わせに使う会議室は、グループウェアの施設予約から押さえます。"
        "10人以上の打ち合わせは大会議室を使ってください。",
    "soumu/insurance.md": "# 社会保険と健康診断\n\n健康保険証は入社後2週間ほどで届きます。定期健康診断は毎年6月に実施します。",
    "soumu/cafeteria.md": "# 社員食堂のメニュー\n\n金曜日の日替わり定食はカツ丼です。"
        "ヘルシーメニューはカロリー表示つきで、毎日用意しています。",
    "soumu/lost-and-found.md": "# 忘れ物・落とし物\n\n忘れ物は受付で1か月保管します。傘は2週間で処分します。",
    "soumu/disaster.md": "# 地震が起きたら\n\n揺れが収まるまで机の下に隠れてください。避難経路は各階の非常口の案内図で確認できます。",
    "keiri/expenses.md": "# 経費の精算\n\n経費精算はレシートの写真を添えて月末までに申請します。"
        "交通費は ICカードの利用履歴から取り込めます。",
    "keiri/transfer.md": "# 振り込みの期限\n\n取引先への振り込みは毎月25日に行います。"
        "締め切りは前月末で、請求書の原本が経理部に届いている必要があります。",
    "keiri/estimate.md": "# 見積もり書の作り方\n\n見積もり書は販売管理システムのテンプレートから作成します。"
        "有効期限は発行日から30日です。値引きがある場合は営業部長の承認を得てください。",
    "keiri/invoice.md": "# 請求書の発行\n\n請求書は納品の翌月5日までに発行します。PDF で送る場合も押印の代わりに電子署名を付けます。",
    "it/vpn.md": "# 社外から VPN で接続する\n\n自宅や出張先から社内システムを使うときは VPN に接続します。"
        "接続できない場合は、ルーターを再起動してから情報システム部に連絡してください。",
    "it/wifi.md": "# 社内 Wi-Fi\n\n社員用の Wi-Fi は SSID「office-secure」です。来客用のゲスト Wi-Fi は受付でパスワードを案内します。",
    "it/password.md": "# パスワードを忘れたとき\n\nパスワードを忘れた場合は、ポータルの「パスワード再設定」から手続きできます。"
        "3回続けて間違えるとアカウントが30分ロックされます。",
    "it/pc-broken.md": "# パソコンが壊れたら\n\nパソコンが壊れる・動かなくなる・画面が映らないといった故障は、"
        "ヘルプデスクに修理を依頼してください。代替機を貸し出します。",
    "it/slack.md": "# Slack の使い方\n\n部署ごとのチャンネルに参加してください。"
        "お客様の個人情報は Slack に書き込まないでください。",
    "it/github.md": "# GitHub のアカウント\n\n開発部門の社員は会社の GitHub Organization に招待されます。"
        "二要素認証の設定が必須です。",
    "it/python.md": "# Python の開発環境\n\n社内の標準は Python 3.12 です。パッケージは社内ミラーから入れてください。",
    "it/excel-macro.md": "# Excel マクロの注意\n\n外部から受け取った Excel ファイルのマクロは、有効にしないでください。",
    "it/ai-guideline.md": "# 生成ＡＩの利用ガイドライン\n\n生成ＡＩに社外秘の情報を入力してはいけません。"
        "ＡＩが出した回答は必ず人が確認してから使ってください。",
    "it/printer.md": "# 複合機の使い方\n\nコピーやスキャンは社員証をかざして使います。"
        "カラー印刷は部署ごとに枚数の上限があります。",
    "sales/delivery.md": "# 納期の目安\n\n標準品の納期はご注文から5営業日です。特注品は2〜3週間かかります。"
        "お急ぎの場合は営業担当にご相談ください。",
    "sales/stock.md": "# 在庫の確認\n\n在庫は販売管理システムでリアルタイムに確認できます。"
        "在庫が10個を切ると自動で発注されます。",
    "sales/returns.md": "# 返品の受け付け\n\n商品の返品は、到着から14日以内であれば受け付けます。"
        "開封済みの消耗品は返品できません。",
    "sales/contact.md": "# お問い合わせ窓口\n\nお客様からの問い合わせは、平日9時から18時まで窓口で受け付けています。"
        "メールでの問い合わせには2営業日以内に返信します。",
    "sales/discount.md": "# 値引きのルール\n\n10%を超える値引きは営業部長の承認が必要です。",
    "product/accessories.md": "# 同梱されている付属品\n\n本体のほか、電源アダプター・USBケーブル・取り扱い説明書が付属しています。"
        "付属品をなくした場合は、サポートセンターで購入できます。",
    "product/manual.md": "# 取り扱い説明書のダウンロード\n\n取り扱い説明書の最新版は、製品ページから PDF でダウンロードできます。",
    "product/warranty.md": "# 保証期間\n\n製品の保証期間はお買い上げから1年間です。"
        "落下や水濡れによる故障は保証の対象外です。",
    "product/battery.md": "# バッテリーの持ち\n\nフル充電で約10時間使えます。"
        "電池の減りが早くなったら、バッテリーの交換をご検討ください。",
    "product/firmware.md": "# ファームウェアの更新\n\n新しいファームウェアはアプリから自動で更新されます。"
        "更新中は電源を切らないでください。",
    "product/spec.md": "# 製品仕様\n\n重さは約180g、防水性能は IPX4 相当です。Bluetooth 5.3 に対応しています。",
    "events/marathon.md": "# 社内マラソン大会\n\n毎年10月に皇居の周りを走る大会を開いています。"
        "昨年は120人の社員が走りました。完走者には記念品を贈ります。",
    "events/party.md": "# 忘年会の案内\n\n今年の忘年会は12月20日に本社の大会議室で行います。参加の申し込みは12月10日までです。",
    "events/study.md": "# 勉強会のお知らせ\n\n毎週水曜日の昼に、機械学習の勉強会を開いています。誰でも参加できます。",
    "dev/release.md": "# リリース手順\n\nリリースの前日までにステージング環境で受け入れテストを行います。"
        "本番へのデプロイは火曜日と木曜日だけです。",
    "dev/review.md": "# コードレビューの進め方\n\nプルリクエストには必ず1人以上のレビューが必要です。"
        "レビューの依頼から24時間以内に返事をしてください。",
    "dev/incident.md": "# 障害が起きたとき\n\nサービスが止まった場合は、まず障害チャンネルで報告してください。"
        "原因が分かったら、再発防止策を含めた報告書を1週間以内にまとめます。",
}

# (query, the documents that answer it, what the query tests)
QUERIES: list[tuple[str, set[str], str]] = [
    ("有給の申込", {"soumu/apply-leave.md"}, "variant 申込 / 申し込み"),
    ("申込み期限 忘年会", {"events/party.md"}, "variant 申込み / 申し込み"),
    ("附属品", {"product/accessories.md"}, "variant 附属 / 付属"),
    ("かつ丼", {"soumu/cafeteria.md"}, "variant かつ丼 / カツ丼"),
    ("AI 利用ルール", {"it/ai-guideline.md"}, "full-width ＡＩ / AI"),
    ("走った人数", {"events/marathon.md"}, "inflection 走った / 走る・走りました"),
    ("パソコンが壊れた", {"it/pc-broken.md"}, "inflection 壊れた / 壊れる"),
    ("パスワードを忘れる", {"it/password.md"}, "inflection 忘れる / 忘れた"),
    ("打合せ 会議室", {"soumu/meeting-rooms.md"}, "variant 打合せ / 打ち合わせ"),
    ("振込の締切", {"keiri/transfer.md"}, "variant 振込・締切 / 振り込み・締め切り"),
    ("引越し 届け出", {"soumu/moving.md"}, "variant 引越し / 引っ越し"),
    ("問合せ窓口", {"sales/contact.md"}, "variant 問合せ / 問い合わせ"),
    ("取扱説明書", {"product/manual.md", "product/accessories.md"}, "variant 取扱説明書 / 取り扱い説明書"),
    ("見積書の有効期限", {"keiri/estimate.md"}, "variant 見積書 / 見積もり書"),
    ("返品の受付", {"sales/returns.md"}, "variant 受付 / 受け付け"),
    ("納期", {"sales/delivery.md"}, "2-character word"),
    ("在庫", {"sales/stock.md"}, "2-character word"),
    ("経費", {"keiri/expenses.md"}, "2-character word"),
    ("残業", {"soumu/overtime.md"}, "2-character word"),
    ("駐車", {"soumu/parking.md"}, "2-character word (part of 駐車場)"),
    ("地震", {"soumu/disaster.md"}, "2-character word"),
    ("保証", {"product/warranty.md"}, "2-character word"),
    ("障害", {"dev/incident.md"}, "2-character word"),
    ("VPN", {"it/vpn.md"}, "English term"),
    ("vpn つながらない", {"it/vpn.md"}, "English term, lower case, and a verb"),
    ("Wi-Fi パスワード", {"it/wifi.md"}, "English term with a hyphen"),
    ("Python", {"it/python.md"}, "English term"),
    ("ｓｌａｃｋ", {"it/slack.md"}, "full-width English term"),
    ("GitHub 二要素認証", {"it/github.md"}, "English term and a compound"),
    ("excel マクロ", {"it/excel-macro.md"}, "English term, lower case"),
    ("PDF ダウンロード", {"product/manual.md"}, "English term and katakana"),
    ("Bluetooth", {"product/spec.md"}, "English term"),
    ("バッテリー交換", {"product/battery.md"}, "compound written apart in the document"),
    ("ファームウェア更新中", {"product/firmware.md"}, "compound"),
    ("値引き 承認", {"sales/discount.md", "keiri/estimate.md"}, "two words"),
    ("健康診断はいつ", {"soumu/insurance.md"}, "a question"),
    ("デプロイできる曜日", {"dev/release.md"}, "a question"),
    ("レビューの依頼", {"dev/review.md"}, "noun phrase with a particle"),
    ("機械学習の勉強会", {"events/study.md"}, "noun phrase with a particle"),
    ("落とし物", {"soumu/lost-and-found.md"}, "word in the title"),
    # Added after the search was tuned on the queries above, and not tuned on since.
    ("食堂の日替わり", {"soumu/cafeteria.md"}, "noun phrase"),
    ("避難経路", {"soumu/disaster.md"}, "compound"),
    ("通勤手当", {"soumu/moving.md"}, "compound"),
    ("ゲスト用wifi", {"it/wifi.md"}, "English term, no hyphen, glued to Japanese"),
    ("ICカード 交通費", {"keiri/expenses.md"}, "English letters and katakana"),
    ("保険証が届く時期", {"soumu/insurance.md"}, "a question, inflection 届く / 届きます"),
    ("電池が減る", {"product/battery.md"}, "inflection 減る / 減り"),
    ("アカウントがロックされた", {"it/password.md"}, "inflection ロックされた / ロックされます"),
    ("請求書を送る", {"keiri/invoice.md"}, "verb phrase"),
    ("防水", {"product/spec.md"}, "2-character word"),
    ("傘の保管期間", {"soumu/lost-and-found.md"}, "words apart in the document"),
    ("深夜勤務", {"soumu/overtime.md"}, "compound written apart in the document"),
]
# fmt: on
